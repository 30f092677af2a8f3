package smstest_test

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/twofold-idp/twofold/sms/smstest"
)

const (
	to   = "+4915112345678"
	from = "+15005550006"
)

// answer is a decoded JSON answer. Twilio's "status" is a string in a
// message resource and the HTTP status, a number, in an error.
type answer map[string]any

func (a answer) str(k string) string { s, _ := a[k].(string); return s }
func (a answer) num(k string) int    { f, _ := a[k].(float64); return int(f) }

type request struct {
	method, path, user, pass, contentType, body string
}

// goodRequest returns a request that the server accepts.
func goodRequest(srv *smstest.Server) request {
	return request{
		method:      http.MethodPost,
		path:        "/2010-04-01/Accounts/" + srv.AccountSID + "/Messages.json",
		user:        srv.AccountSID,
		pass:        srv.AuthToken,
		contentType: "application/x-www-form-urlencoded",
		body:        url.Values{"To": {to}, "From": {from}, "Body": {"code 123456"}}.Encode(),
	}
}

func do(t *testing.T, srv *smstest.Server, r request) (int, answer) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), r.method, srv.URL+r.path, strings.NewReader(r.body))
	if err != nil {
		t.Fatal(err)
	}
	if r.user != "" || r.pass != "" {
		req.SetBasicAuth(r.user, r.pass)
	}
	if r.contentType != "" {
		req.Header.Set("Content-Type", r.contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type = %q, want application/json", ct)
	}
	var a answer
	if err := json.NewDecoder(resp.Body).Decode(&a); err != nil {
		t.Fatalf("decode answer: %v", err)
	}
	// An error answer repeats the HTTP status in the body.
	if _, isErr := a["code"]; isErr || resp.StatusCode >= 400 {
		if got := a.num("status"); got != resp.StatusCode {
			t.Errorf("status in error answer = %v, want %d", a["status"], resp.StatusCode)
		}
	}
	return resp.StatusCode, a
}

func TestStart(t *testing.T) {
	a, b := smstest.Start(t), smstest.Start(t)
	sid := regexp.MustCompile(`^AC[0-9a-f]{32}$`)
	for _, srv := range []*smstest.Server{a, b} {
		if !sid.MatchString(srv.AccountSID) {
			t.Errorf("AccountSID = %q, want AC and 32 hex digits", srv.AccountSID)
		}
		if len(srv.AuthToken) != 32 {
			t.Errorf("AuthToken = %q, want 32 characters", srv.AuthToken)
		}
		if !strings.HasPrefix(srv.URL, "http://127.0.0.1:") {
			t.Errorf("URL = %q, want http://127.0.0.1:port", srv.URL)
		}
	}
	if a.AccountSID == b.AccountSID || a.AuthToken == b.AuthToken || a.URL == b.URL {
		t.Errorf("two servers share credentials or URL: %+v, %+v", a, b)
	}
}

func TestAccept(t *testing.T) {
	srv := smstest.Start(t)
	r := goodRequest(srv)
	r.contentType = "application/x-www-form-urlencoded; charset=utf-8"
	status, a := do(t, srv, r)
	if status != http.StatusCreated {
		t.Fatalf("status = %d (%v), want 201", status, a)
	}
	if sid := a.str("sid"); !regexp.MustCompile(`^SM[0-9a-f]{32}$`).MatchString(sid) {
		t.Errorf("sid = %q, want SM and 32 hex digits", sid)
	}
	if a.str("status") != "queued" || a.str("to") != to || a.str("from") != from || a.str("body") != "code 123456" {
		t.Errorf("answer = %v, want queued %s → %s, body %q", a, from, to, "code 123456")
	}
	want := []smstest.Message{{To: to, From: from, Body: "code 123456"}}
	if got := srv.Wait(t, 1); len(got) != 1 || got[0] != want[0] {
		t.Errorf("messages = %+v, want %+v", got, want)
	}
	if n := srv.Requests(); n != 1 {
		t.Errorf("Requests = %d, want 1", n)
	}
}

// TestRefuse covers the checks Twilio makes, each with its answer.
func TestRefuse(t *testing.T) {
	form := func(kv ...string) string {
		v := url.Values{}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v.Encode()
	}
	tests := []struct {
		name         string
		modify       func(r *request, srv *smstest.Server)
		status, code int
	}{
		{"no auth", func(r *request, _ *smstest.Server) { r.user, r.pass = "", "" }, 401, 20003},
		{"wrong token", func(r *request, _ *smstest.Server) { r.pass = "wrong" }, 401, 20003},
		{"wrong user", func(r *request, _ *smstest.Server) { r.user = "AC" + strings.Repeat("0", 32) }, 401, 20003},
		{"other account in path", func(r *request, _ *smstest.Server) {
			r.path = "/2010-04-01/Accounts/AC" + strings.Repeat("0", 32) + "/Messages.json"
		}, 404, 20404},
		{"wrong path", func(r *request, srv *smstest.Server) { r.path = "/2010-04-01/Accounts/" + srv.AccountSID + "/Messages" }, 404, 20404},
		{"wrong version", func(r *request, srv *smstest.Server) { r.path = "/v1/Accounts/" + srv.AccountSID + "/Messages.json" }, 404, 20404},
		{"GET", func(r *request, _ *smstest.Server) { r.method = http.MethodGet }, 405, 20004},
		{"PUT", func(r *request, _ *smstest.Server) { r.method = http.MethodPut }, 405, 20004},
		{"JSON body", func(r *request, _ *smstest.Server) {
			r.contentType = "application/json"
			r.body = `{"To":"` + to + `","From":"` + from + `","Body":"code"}`
		}, 400, 21604},
		{"no content type", func(r *request, _ *smstest.Server) { r.contentType = "" }, 400, 21604},
		{"parameters in the query", func(r *request, srv *smstest.Server) {
			r.path += "?" + r.body
			r.body = ""
		}, 400, 21604},
		{"no To", func(r *request, _ *smstest.Server) { r.body = form("From", from, "Body", "code") }, 400, 21604},
		{"To not E.164", func(r *request, _ *smstest.Server) { r.body = form("To", "015112345678", "From", from, "Body", "code") }, 400, 21211},
		{"no From", func(r *request, _ *smstest.Server) { r.body = form("To", to, "Body", "code") }, 400, 21603},
		{"From not E.164", func(r *request, _ *smstest.Server) { r.body = form("To", to, "From", "Twofold", "Body", "code") }, 400, 21212},
		{"no Body", func(r *request, _ *smstest.Server) { r.body = form("To", to, "From", from) }, 400, 21602},
		{"empty Body", func(r *request, _ *smstest.Server) { r.body = form("To", to, "From", from, "Body", "") }, 400, 21602},
		{"Body too long", func(r *request, _ *smstest.Server) {
			r.body = form("To", to, "From", from, "Body", strings.Repeat("ü", 1601))
		}, 400, 21617},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := smstest.Start(t)
			r := goodRequest(srv)
			tt.modify(&r, srv)
			status, a := do(t, srv, r)
			if status != tt.status || a.num("code") != tt.code {
				t.Errorf("status, code = %d, %d (%v), want %d, %d", status, a.num("code"), a, tt.status, tt.code)
			}
			if a.str("message") == "" || a.str("more_info") != "https://www.twilio.com/docs/errors/"+strconv.Itoa(tt.code) {
				t.Errorf("answer = %v, want a message and more_info for %d", a, tt.code)
			}
			if n := len(srv.Messages()); n != 0 {
				t.Errorf("server accepted %d messages, want 0", n)
			}
			if n := srv.Requests(); n != 1 {
				t.Errorf("Requests = %d, want 1", n)
			}
		})
	}
}

func TestFail(t *testing.T) {
	srv := smstest.Start(t)
	srv.Fail(400, 21211, "bad number")
	srv.Fail(503, 0, "down")

	status, a := do(t, srv, goodRequest(srv))
	if status != 400 || a.num("code") != 21211 || a.str("message") != "bad number" || a.str("more_info") != "https://www.twilio.com/docs/errors/21211" {
		t.Errorf("first answer = %d %v, want 400, code 21211", status, a)
	}
	status, a = do(t, srv, goodRequest(srv))
	if _, hasCode := a["code"]; status != 503 || hasCode || a.str("message") != "down" || a["more_info"] != nil {
		t.Errorf("second answer = %d %v, want 503 without code", status, a)
	}
	if n := len(srv.Messages()); n != 0 {
		t.Errorf("server accepted %d messages during failures, want 0", n)
	}
	// Each failure applied once.
	if status, a := do(t, srv, goodRequest(srv)); status != 201 {
		t.Errorf("third answer = %d %v, want 201", status, a)
	}
	if n := len(srv.Wait(t, 1)); n != 1 {
		t.Errorf("got %d messages, want 1", n)
	}
}

func TestMessagesIsACopy(t *testing.T) {
	srv := smstest.Start(t)
	do(t, srv, goodRequest(srv))
	srv.Wait(t, 1)[0].Body = "changed by Wait's caller"
	srv.Messages()[0].Body = "changed by Messages' caller"
	if got := srv.Messages()[0].Body; got != "code 123456" {
		t.Errorf("Messages()[0].Body = %q after changing returned copies", got)
	}
}
