// Package smstest runs a fake of Twilio's Programmable Messaging API on the
// loopback interface for tests, and records the messages it accepts.
//
// The fake implements the documented contract of one endpoint,
// POST /2010-04-01/Accounts/{AccountSid}/Messages.json, with Twilio's
// checks and error answers. It is stricter than Twilio in one way: To and
// From must be E.164 numbers, where Twilio also takes short codes,
// alphanumeric sender IDs and, for some countries, national numbers.
package smstest

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"mime"
	"net/http"
	"net/http/httptest"
	"regexp"
	"sync"
	"testing"
	"time"
	"unicode/utf8"
)

// A Message is one message the server accepted.
type Message struct {
	To, From, Body string
}

// A Server is a running fake Twilio API.
type Server struct {
	URL        string // base URL, http://127.0.0.1:port; use as sms.Config.BaseURL
	AccountSID string // "AC" and 32 hex digits, random
	AuthToken  string // 32 hex digits, random

	mu       sync.Mutex
	msgs     []Message
	requests int
	fails    []apiError
	changed  chan struct{} // closed and replaced whenever msgs grows
}

const (
	waitTimeout = 10 * time.Second
	maxBody     = 64 << 10
	maxChars    = 1600 // Twilio's limit for Body
)

// e164 is the project's rule, written independently of package sms so that
// the fake checks sms.ValidE164 rather than repeating its mistakes.
var e164 = regexp.MustCompile(`^\+[1-9][0-9]{7,14}$`)

// Start starts a Server on 127.0.0.1 at a free port, with a random account
// SID and auth token. It is stopped when the test and its subtests finish.
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{
		AccountSID: "AC" + randomHex(),
		AuthToken:  randomHex(),
		changed:    make(chan struct{}),
	}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = srv.URL
	t.Cleanup(srv.Close)
	return s
}

// randomHex returns 32 random hex digits.
func randomHex() string {
	b := make([]byte, 16)
	rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

// Messages returns a copy of the messages accepted so far, in order.
func (s *Server) Messages() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Message(nil), s.msgs...)
}

// Requests returns how many requests the server has received, including
// those it refused. A test can use it to check that a client refused
// something without asking the gateway.
func (s *Server) Requests() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.requests
}

// Wait waits until at least n messages have been accepted and returns all
// of them. It fails the test after 10 seconds.
func (s *Server) Wait(t testing.TB, n int) []Message {
	t.Helper()
	timeout := time.NewTimer(waitTimeout)
	defer timeout.Stop()
	for {
		s.mu.Lock()
		if len(s.msgs) >= n {
			msgs := append([]Message(nil), s.msgs...)
			s.mu.Unlock()
			return msgs
		}
		got, changed := len(s.msgs), s.changed
		s.mu.Unlock()

		select {
		case <-changed:
		case <-timeout.C:
			t.Fatalf("smstest: got %d messages after %v, want %d", got, waitTimeout, n)
		}
	}
}

// Fail makes the server answer the next request, whatever it is, with
// this error, as Twilio would send it: a JSON body with code, message,
// more_info and status. A code of 0 leaves out code and more_info, as for
// an outage. Each call applies to one request; several calls queue up.
func (s *Server) Fail(status, code int, message string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.fails = append(s.fails, apiError{Status: status, Code: code, Message: message})
}

// apiError is Twilio's error answer.
type apiError struct {
	Code     int    `json:"code,omitempty"`
	Message  string `json:"message"`
	MoreInfo string `json:"more_info,omitempty"`
	Status   int    `json:"status"`
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	var fail *apiError
	if len(s.fails) > 0 {
		fail = &s.fails[0]
		s.fails = s.fails[1:]
	}
	s.mu.Unlock()
	if fail != nil {
		writeError(w, fail.Status, fail.Code, fail.Message)
		return
	}

	// Twilio authenticates before it looks at the resource.
	if user, pass, ok := r.BasicAuth(); !ok || user != s.AccountSID || pass != s.AuthToken {
		w.Header().Set("WWW-Authenticate", `Basic realm="Twilio API"`)
		writeError(w, http.StatusUnauthorized, 20003, "Authenticate")
		return
	}
	if r.URL.Path != "/2010-04-01/Accounts/"+s.AccountSID+"/Messages.json" {
		writeError(w, http.StatusNotFound, 20404, fmt.Sprintf("The requested resource %s was not found", r.URL.Path))
		return
	}
	if r.Method != http.MethodPost {
		// Twilio lists messages on GET; the fake only sends.
		writeError(w, http.StatusMethodNotAllowed, 20004, "Method not allowed")
		return
	}

	// Twilio reads parameters only from a form body; a JSON body, for
	// example, reads as one without To (error 21604). The query does not
	// count either, hence PostForm.
	r.Body = http.MaxBytesReader(w, r.Body, maxBody)
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt == "application/x-www-form-urlencoded" {
		if err := r.ParseForm(); err != nil {
			writeError(w, http.StatusBadRequest, 0, "smstest: cannot parse the form: "+err.Error())
			return
		}
	}
	to, from, body := r.PostForm.Get("To"), r.PostForm.Get("From"), r.PostForm.Get("Body")

	switch {
	case to == "":
		writeError(w, http.StatusBadRequest, 21604, "A 'To' phone number is required.")
	case !e164.MatchString(to):
		writeError(w, http.StatusBadRequest, 21211, fmt.Sprintf("The 'To' number %s is not a valid phone number.", to))
	case from == "":
		writeError(w, http.StatusBadRequest, 21603, "A 'From' phone number is required.")
	case !e164.MatchString(from):
		writeError(w, http.StatusBadRequest, 21212, fmt.Sprintf("The 'From' number %s is not a valid phone number, shortcode, or alphanumeric sender ID.", from))
	case body == "":
		writeError(w, http.StatusBadRequest, 21602, "Message body is required.")
	case utf8.RuneCountInString(body) > maxChars:
		// Twilio counts encoded characters; code points are close enough.
		writeError(w, http.StatusBadRequest, 21617, "The concatenated message body exceeds the 1600 character limit.")
	default:
		s.add(Message{To: to, From: from, Body: body})
		sid := "SM" + randomHex()
		writeJSON(w, http.StatusCreated, map[string]any{
			"sid":         sid,
			"account_sid": s.AccountSID,
			"to":          to,
			"from":        from,
			"body":        body,
			"status":      "queued",
			"direction":   "outbound-api",
			"uri":         "/2010-04-01/Accounts/" + s.AccountSID + "/Messages/" + sid + ".json",
		})
	}
}

func (s *Server) add(m Message) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.msgs = append(s.msgs, m)
	close(s.changed)
	s.changed = make(chan struct{})
}

func writeError(w http.ResponseWriter, status, code int, message string) {
	e := apiError{Code: code, Message: message, Status: status}
	if code != 0 {
		e.MoreInfo = fmt.Sprintf("https://www.twilio.com/docs/errors/%d", code)
	}
	writeJSON(w, status, e)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		panic(err) // only strings and ints
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(data)
}
