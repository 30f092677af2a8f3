// Package sms sends text messages, such as login codes, through Twilio's
// Programmable Messaging REST API.
package sms

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"net/url"
	"regexp"
	"strings"
	"time"
)

// DefaultBaseURL is Twilio's REST API, used when Config.BaseURL is empty.
const DefaultBaseURL = "https://api.twilio.com"

const (
	defaultTimeout = 10 * time.Second
	// maxResponse bounds what is read of an answer: Twilio's are a few
	// hundred bytes, and a misdirected BaseURL must not fill memory.
	maxResponse = 64 << 10
)

// Config describes the Twilio account and the sender.
type Config struct {
	AccountSID string        // "AC" followed by 32 lowercase hex digits; also the Basic auth user name
	AuthToken  string        // the account's auth token, the Basic auth password
	From       string        // the sending Twilio number, in E.164 format, e.g. +15005550006
	BaseURL    string        // the API's scheme and host (and path prefix, if any); empty means DefaultBaseURL
	Timeout    time.Duration // limit for one Send, from dialling to the answer; 0 means 10s
}

var accountSIDPattern = regexp.MustCompile(`^AC[0-9a-f]{32}$`)

// Validate returns every problem with c, each as "field: message" where
// field is one of account_sid, auth_token, from or base_url, so that the
// caller can prefix its own section name. It returns nil for a good Config.
// No message contains the auth token or credentials in BaseURL.
func (c Config) Validate() []string {
	var problems []string
	add := func(field, format string, args ...any) {
		problems = append(problems, field+": "+fmt.Sprintf(format, args...))
	}

	// The value is not quoted back: a token pasted into the wrong field
	// would otherwise end up in the logs.
	if c.AccountSID == "" {
		add("account_sid", "required")
	} else if !accountSIDPattern.MatchString(c.AccountSID) {
		add("account_sid", `must be "AC" followed by 32 lowercase hex digits`)
	}

	if c.AuthToken == "" {
		add("auth_token", "required")
	}

	if c.From == "" {
		add("from", "required")
	} else if !ValidE164(c.From) {
		add("from", "%q is not an E.164 number (+ and 8 to 15 digits, the first not 0)", c.From)
	}

	if c.BaseURL != "" {
		if msg := checkBaseURL(c.BaseURL); msg != "" {
			add("base_url", "%s", msg)
		}
	}
	return problems
}

// checkBaseURL returns what is wrong with raw, or "".
func checkBaseURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		// Not the *url.Error itself: it quotes raw, which may hold a password.
		var uerr *url.Error
		if errors.As(err, &uerr) {
			err = uerr.Err
		}
		return fmt.Sprintf("not a valid URL: %v", err)
	}
	switch {
	case u.User != nil:
		// Credentials go in the Authorization header; in the URL they
		// would also show up in errors and logs.
		return "must not contain credentials"
	case !u.IsAbs() || u.Host == "":
		return fmt.Sprintf("%q is not an absolute URL", raw)
	case u.RawQuery != "" || u.ForceQuery || u.Fragment != "":
		return fmt.Sprintf("%q must not have a query or fragment", raw)
	case u.Scheme == "https":
		return ""
	case u.Scheme == "http":
		// The request carries the auth token; only a loopback address
		// keeps it off the network.
		if !isLoopback(u.Hostname()) {
			return fmt.Sprintf("%q must use https; http is allowed only for a loopback host (localhost, 127.0.0.0/8, ::1)", raw)
		}
		return ""
	default:
		return fmt.Sprintf("%q must use https", raw)
	}
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.Unmap().IsLoopback()
}

// ErrInvalidNumber reports a recipient that is not a valid phone number,
// whether Send refused it or the gateway did. Test for it with errors.Is.
var ErrInvalidNumber = errors.New("sms: invalid phone number")

// An Error is an error answer from the gateway. Send returns it wrapped;
// use errors.As to inspect it.
type Error struct {
	Status  int    // HTTP status code
	Code    int    // Twilio error code (https://www.twilio.com/docs/api/errors); 0 if the answer had none
	Message string // Twilio's message, or the HTTP status text if the answer had none
}

func (e *Error) Error() string {
	if e.Code != 0 {
		return fmt.Sprintf("twilio: HTTP %d: error %d: %s", e.Status, e.Code, e.Message)
	}
	return fmt.Sprintf("twilio: HTTP %d: %s", e.Status, e.Message)
}

// Is reports whether e means the recipient's number is unusable, so that
// errors.Is(err, ErrInvalidNumber) tells a bad number from an outage.
func (e *Error) Is(target error) bool {
	if target != ErrInvalidNumber {
		return false
	}
	switch e.Code {
	case 21211, // the 'To' number is not a valid phone number
		21614: // the 'To' number is not a mobile number
		return true
	}
	return false
}

// Twilio sends messages through one Twilio account. It is safe for
// concurrent use.
type Twilio struct {
	client    *http.Client
	endpoint  string
	sid       string
	authToken string
	from      string
	timeout   time.Duration
}

// New returns a Twilio for c that sends with client, or an error listing
// every problem that c.Validate finds. A nil client means a client bounded
// by c.Timeout that does not follow redirects. New does not contact the
// gateway.
func New(c Config, client *http.Client) (*Twilio, error) {
	if problems := c.Validate(); len(problems) > 0 {
		return nil, fmt.Errorf("sms: invalid config: %s", strings.Join(problems, "; "))
	}
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = defaultTimeout
	}
	if client == nil {
		client = &http.Client{
			Timeout: timeout,
			// Twilio's API does not redirect; a redirect means a wrong
			// BaseURL, and following it would resend the credentials.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	base := c.BaseURL
	if base == "" {
		base = DefaultBaseURL
	}
	return &Twilio{
		client:    client,
		endpoint:  strings.TrimSuffix(base, "/") + "/2010-04-01/Accounts/" + c.AccountSID + "/Messages.json",
		sid:       c.AccountSID,
		authToken: c.AuthToken,
		from:      c.From,
		timeout:   timeout,
	}, nil
}

// Send sends body to the E.164 number to. It refuses an invalid number,
// with an error that wraps ErrInvalidNumber, and an empty body, both
// without contacting the gateway.
//
// A success means that Twilio has queued the message, not that it has
// been delivered. If the gateway refuses the message, the error wraps an
// *Error. Send gives up when ctx is done or the configured timeout has
// passed, and then returns an error that wraps ctx's error. No error
// contains the auth token.
func (t *Twilio) Send(ctx context.Context, to, body string) error {
	if !ValidE164(to) {
		// The number is not quoted: it is personal data, and logs keep it.
		return fmt.Errorf("send sms: recipient: %w", ErrInvalidNumber)
	}
	if body == "" {
		return errors.New("send sms: empty body")
	}

	ctx, cancel := context.WithTimeout(ctx, t.timeout)
	defer cancel()

	form := url.Values{"To": {to}, "From": {t.from}, "Body": {body}}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, t.endpoint, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("send sms: %w", err)
	}
	req.SetBasicAuth(t.sid, t.authToken)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Set("Accept", "application/json")

	resp, err := t.client.Do(req)
	if err != nil {
		// A *url.Error: it names the endpoint, which holds the account
		// SID but never the token, which travels in a header.
		return fmt.Errorf("send sms: %w", err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, maxResponse))
	if err != nil {
		return fmt.Errorf("send sms: read answer (HTTP %d): %w", resp.StatusCode, err)
	}

	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("send sms: %w", t.gatewayError(resp.StatusCode, data))
	}
	// Twilio answers 201 with the new Message resource. Anything else
	// that claims success, such as a web page at a wrong BaseURL, did not
	// queue a message.
	var msg struct {
		SID    string `json:"sid"`
		Status string `json:"status"`
	}
	if err := json.Unmarshal(data, &msg); err != nil || msg.SID == "" {
		return fmt.Errorf("send sms: HTTP %d without a message resource; is base_url Twilio's API?", resp.StatusCode)
	}
	return nil
}

// gatewayError returns the *Error for an error answer.
func (t *Twilio) gatewayError(status int, data []byte) *Error {
	var answer struct {
		Code    int    `json:"code"`
		Message string `json:"message"`
	}
	// A proxy or load balancer in front of Twilio may answer with HTML;
	// the status alone then has to do.
	if json.Unmarshal(data, &answer) != nil {
		answer.Code, answer.Message = 0, ""
	}
	if answer.Message == "" {
		answer.Message = http.StatusText(status)
	}
	// Twilio does not echo credentials, but whatever answers at BaseURL
	// might; errors end up in logs.
	answer.Message = strings.ReplaceAll(answer.Message, t.authToken, "[redacted]")
	return &Error{Status: status, Code: answer.Code, Message: answer.Message}
}

// ValidE164 reports whether s is an E.164 number: "+" followed by 8 to 15
// ASCII digits, the first not 0.
func ValidE164(s string) bool {
	if len(s) < 1+8 || len(s) > 1+15 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// Mask returns e164 for display with all but its last two digits hidden:
// the "+", one "•" per hidden digit, then the last two digits, so that
// "+15005550067" becomes "+•••••••••67". The country code is hidden too,
// so that the rule is the same for every country. Mask returns "" if e164
// is not an E.164 number, so that nothing of a malformed value is shown.
func Mask(e164 string) string {
	if !ValidE164(e164) {
		return ""
	}
	digits := e164[1:]
	return "+" + strings.Repeat("•", len(digits)-2) + digits[len(digits)-2:]
}
