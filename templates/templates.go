// Package templates holds the hosted pages (login, consent, logout,
// errors) and their stylesheet, embedded in the binary. Every page is
// parsed at startup; a missing one stops the server from starting.
package templates

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io/fs"
	"net/http"
)

//go:embed *.html static
var files embed.FS

// required lists the pages handlers render; Parse fails if one is missing.
var required = []string{"login.html", "consent.html", "error.html", "logout.html", "loggedout.html",
	"second_factor.html", "enrol.html", "recovery_codes.html", "account.html", "reauth.html", "webauthn_register.html", "new_password.html",
	"admin.html", "admin_user.html", "admin_client.html", "admin_client_secret.html", "admin_audit.html", "admin_password.html", "forgot.html"}

// funcs are the pages' helpers: dict builds the map of a form's hidden
// fields ("hidden") from key, value pairs.
var funcs = template.FuncMap{
	"dict": func(kv ...string) (map[string]string, error) {
		if len(kv)%2 != 0 {
			return nil, fmt.Errorf("dict: odd number of arguments")
		}
		m := make(map[string]string, len(kv)/2)
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m, nil
	},
}

// Set is the parsed pages.
type Set struct {
	pages map[string]*template.Template
}

// Parse parses every required page with the shared layout.
func Parse() (*Set, error) {
	s := &Set{pages: map[string]*template.Template{}}
	for _, name := range required {
		t, err := template.New(name).Funcs(funcs).ParseFS(files, "layout.html", name)
		if err != nil {
			return nil, fmt.Errorf("parse template %s: %w", name, err)
		}
		s.pages[name] = t
	}
	return s, nil
}

// Render writes a page with status code. It renders into a buffer first
// so a template error never sends half a page.
func (s *Set) Render(w http.ResponseWriter, status int, name string, data any) error {
	t, ok := s.pages[name]
	if !ok {
		return fmt.Errorf("no template %s", name)
	}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", data); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, err := buf.WriteTo(w)
	return err
}

// Static serves the embedded stylesheet and scripts under /static/.
func Static() http.Handler {
	sub, _ := fs.Sub(files, "static")
	return http.StripPrefix("/static/", http.FileServer(http.FS(sub)))
}
