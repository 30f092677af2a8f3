package store

// Throttle counters named by more than one package: the sign-in pages
// count against them and an admin's unlock or reset clears them.

// PasswordCounter is the failed-password counter of an email address
// (its normalised key), one per address whatever the population.
func PasswordCounter(emailKey string) string { return "pwd:" + emailKey }

// FactorCounter is an account's second-factor counter, with its hard cap.
func FactorCounter(userID string) string { return "mfa:user:" + userID }
