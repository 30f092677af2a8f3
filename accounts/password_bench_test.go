package accounts

import "testing"

// BenchmarkVerify is one password check at the default parameters
// (argon2id m=19 MiB, t=2, p=1): the bound of every sign-in.
func BenchmarkVerify(b *testing.B) {
	h := Hasher{Params: DefaultArgon2}
	phc, err := h.Hash("correct horse battery staple")
	if err != nil {
		b.Fatal(err)
	}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if ok, _, err := h.Verify("correct horse battery staple", phc); err != nil || !ok {
				b.Fatal("did not verify", err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if ok, _, err := h.Verify("correct horse battery staple", phc); err != nil || !ok {
					b.Error("did not verify", err)
					return
				}
			}
		})
	})
}
