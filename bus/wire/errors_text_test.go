package wire

import "testing"

// An error's text says its kind once: prefixed, unless the text already
// ends with it; a kind's words inside the text (a file name, say) do not
// count.
func TestErrorSaysItsKindOnce(t *testing.T) {
	for _, tc := range []struct {
		err  *Error
		want string
	}{
		{Errorf(CodeShuttingDown, "the broker is shutting down"), "bus: the broker is shutting down"},
		{Errorf(CodeShuttingDown, "bye"), "bus: shutting down: bye"},
		{Errorf(CodePermissionDenied, "rule of /etc/busd/permission denied.policy"), "bus: permission denied: rule of /etc/busd/permission denied.policy"},
		{&Error{Code: CodeSlowConsumer}, "bus: slow consumer"},
	} {
		if got := tc.err.Error(); got != tc.want {
			t.Errorf("Error() = %q; want %q", got, tc.want)
		}
	}
}
