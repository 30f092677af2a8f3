// Command report turns the results the conformance tests recorded (JSON,
// written when TWOFOLD_CONFORMANCE_REPORT is set) into CONFORMANCE.md. It
// runs no test itself:
//
//	TWOFOLD_CONFORMANCE_REPORT=/tmp/conformance.json go test ./conformance/
//	go run ./conformance/cmd/report -in /tmp/conformance.json -out CONFORMANCE.md
package main

import (
	"flag"
	"fmt"
	"os"

	"github.com/twofold-idp/twofold/conformance"
)

func main() {
	in := flag.String("in", os.Getenv(conformance.EnvReport), "results JSON written by the tests (default $"+conformance.EnvReport+")")
	out := flag.String("out", "CONFORMANCE.md", `markdown file to write ("-" for standard output)`)
	flag.Parse()
	if *in == "" {
		fmt.Fprintln(os.Stderr, "report: no results: pass -in, or set "+conformance.EnvReport)
		os.Exit(2)
	}
	r, err := conformance.ReadReport(*in)
	if err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	md := r.Markdown()
	if *out == "-" {
		fmt.Print(md)
	} else if err := os.WriteFile(*out, []byte(md), 0o644); err != nil {
		fmt.Fprintln(os.Stderr, "report:", err)
		os.Exit(1)
	}
	for _, t := range r.Totals() {
		fmt.Fprintf(os.Stderr, "%s: %d pass (%d with warnings), %d fail, %d not applicable, %d not run\n",
			t.Database, t.Pass, t.Warnings, t.Fail, t.NotApplicable, t.NotRun)
	}
}
