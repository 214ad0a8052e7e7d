package unixsock

import (
	"fmt"
	"slices"
	"syscall"

	"golang.org/x/sys/unix"
)

// CheckDir reports whether dir may hold a socket for someone who trusts
// the users owners (numeric uids): it must be a directory itself, not a
// symbolic link to one, owned by one of owners, with no write permission
// for its group or other users. Whoever can write to a socket's directory
// can put a socket of their own in its place, and whoever owns a symbolic
// link decides where it leads. A failure wraps [ErrInsecureDir] and names
// the directory, what is wrong and what would do; a directory that does
// not exist gives an error matching fs.ErrNotExist.
func CheckDir(dir string, owners ...int) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return fmt.Errorf("%s: %w", dir, err)
	}
	switch {
	case st.Mode&unix.S_IFMT == unix.S_IFLNK:
		return fmt.Errorf("%w: %s is a symbolic link (owned by uid %d); use the directory it leads to, if you trust it",
			ErrInsecureDir, dir, st.Uid)
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("%s: %w", dir, syscall.ENOTDIR)
	case st.Mode&0o022 != 0:
		who := "other users"
		if st.Mode&0o002 == 0 {
			who = "its group's members"
		}
		return fmt.Errorf("%w: %s has mode %04o: %s may write to it, and so put a socket of their own there",
			ErrInsecureDir, dir, st.Mode&0o7777, who)
	case !slices.Contains(owners, int(st.Uid)):
		return fmt.Errorf("%w: %s has owner uid %d; want owner uid %s",
			ErrInsecureDir, dir, st.Uid, uidList(owners))
	}
	return nil
}

// uidList spells owners for an error, each once: "1000", "1000 or 0".
func uidList(owners []int) string {
	s := ""
	owners = slices.Compact(slices.Sorted(slices.Values(owners)))
	for i, u := range owners {
		switch {
		case i == 0:
		case i == len(owners)-1:
			s += " or "
		default:
			s += ", "
		}
		s += fmt.Sprint(u)
	}
	return s
}
