package mailtest

import (
	"strings"
	"testing"
)

func TestDecode(t *testing.T) {
	// msg joins header and body lines with CRLF, as they arrive after DATA.
	msg := func(lines ...string) []byte { return []byte(strings.Join(lines, "\r\n")) }
	tests := []struct {
		name                  string
		raw                   []byte
		wantSubject, wantBody string
		wantErr               string
	}{
		{
			name:        "7bit",
			raw:         msg("Subject: Hello", "Content-Type: text/plain; charset=us-ascii", "", "line 1", "line 2", "", ""),
			wantSubject: "Hello",
			wantBody:    "line 1\nline 2",
		},
		{
			name:        "no MIME headers",
			raw:         msg("Subject: Hello", "", "body  \t", ""),
			wantSubject: "Hello",
			wantBody:    "body",
		},
		{
			name: "quoted-printable with soft line break",
			raw: msg(
				"Subject: =?UTF-8?q?Ihr_Code_f=C3=BCr_Twofold?=",
				"Content-Type: text/plain; charset=UTF-8",
				"Content-Transfer-Encoding: quoted-printable",
				"",
				"G=C3=BCltig zehn Minuten, dies ist eine lange Zeile, die umbrochen werden m=",
				"uss.",
				"",
				"Ende=20",
			),
			wantSubject: "Ihr Code für Twofold",
			wantBody:    "Gültig zehn Minuten, dies ist eine lange Zeile, die umbrochen werden muss.\n\nEnde",
		},
		{
			name: "base64 over several lines, folded subject",
			raw: msg(
				"Subject: =?UTF-8?b?Q29kZQ==?=",
				" =?UTF-8?b?IOKAkyAxMjM0NTY=?=",
				"Content-Type: text/plain; charset=utf-8",
				"Content-Transfer-Encoding: BASE64",
				"",
				"Q29kZTog",
				"MTIzNDU2DQpCeWU=",
			),
			wantSubject: "Code – 123456",
			wantBody:    "Code: 123456\nBye",
		},
		{
			name:    "html",
			raw:     msg("Subject: x", "Content-Type: text/html; charset=utf-8", "", "<p>x</p>"),
			wantErr: "text/html",
		},
		{
			name:    "other charset",
			raw:     msg("Subject: x", "Content-Type: text/plain; charset=iso-8859-1", "", "x"),
			wantErr: "charset",
		},
		{
			name:    "unknown transfer encoding",
			raw:     msg("Subject: x", "Content-Transfer-Encoding: x-uuencode", "", "x"),
			wantErr: "x-uuencode",
		},
		{
			name:    "bad base64",
			raw:     msg("Subject: x", "Content-Transfer-Encoding: base64", "", "!!!!"),
			wantErr: "decode body",
		},
		{
			name:    "no header",
			raw:     []byte("no header here"),
			wantErr: "read message",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subject, body, err := decode(tt.raw)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("decode error = %v, want one with %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			if subject != tt.wantSubject || body != tt.wantBody {
				t.Errorf("decode = %q, %q; want %q, %q", subject, body, tt.wantSubject, tt.wantBody)
			}
		})
	}
}

func TestMessagesIsACopy(t *testing.T) {
	s := Start(t, Options{})
	s.add(Message{From: "a@example.com", To: []string{"b@example.com"}, Raw: []byte("raw")})

	got := s.Messages()
	got[0].To[0] = "changed"
	got[0].Raw[0] = 'X'
	if again := s.Messages(); again[0].To[0] != "b@example.com" || string(again[0].Raw) != "raw" {
		t.Errorf("changing the result of Messages changed the server's copy: %+v", again[0])
	}
}
