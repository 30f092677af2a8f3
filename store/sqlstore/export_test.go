package sqlstore

// SetDeleteBatch shrinks the clean-up batch for a test; the returned
// function restores it.
func SetDeleteBatch(n int) (restore func()) {
	old := deleteBatch
	deleteBatch = n
	return func() { deleteBatch = old }
}

var WithBinaryParameters = withBinaryParameters
