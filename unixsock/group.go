package unixsock

import (
	"errors"
	"fmt"
	"io/fs"
	"os"

	"golang.org/x/sys/unix"
)

// sharedDirMode is the mode of a directory Listen creates for a socket
// given a group (WithGroup): the group's members may reach the sockets in
// it and list them (a client watching the directory for buses needs to),
// and may write nothing there, which would let them replace a socket.
const sharedDirMode = 0o750

// ensureSharedDir is ensureDir for a socket the members of group gid must
// reach: a directory it creates is given to the group with sharedDirMode,
// and one that exists must let the group search it.
func ensureSharedDir(dir string, gid int) error {
	switch err := os.Mkdir(dir, 0o700); {
	case err == nil:
		if err := shareDir(dir, gid); err != nil {
			os.Remove(dir) // empty, and ours: the next try starts afresh
			return err
		}
	case !errors.Is(err, fs.ErrExist):
		return err
	}
	if err := CheckDir(dir, os.Geteuid()); err != nil {
		return err
	}
	return checkGroupReach(dir, gid)
}

// shareDir gives the directory just created 0700 to gid and opens it to
// the group. It works on the directory it opened rather than on the path,
// so that a path swapped for a symbolic link meanwhile changes nothing
// elsewhere (and CheckDir then refuses the link).
func shareDir(dir string, gid int) error {
	fd, err := unix.Open(dir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return &fs.PathError{Op: "open", Path: dir, Err: err}
	}
	defer unix.Close(fd)
	if err := unix.Fchown(fd, -1, gid); err != nil {
		return chownError("the directory "+dir, gid, err)
	}
	// After the chown, never before: the directory is not open to the
	// group it has until it has the group it should.
	if err := unix.Fchmod(fd, sharedDirMode); err != nil {
		return &fs.PathError{Op: "chmod", Path: dir, Err: err}
	}
	return nil
}

// checkGroupReach checks that the members of gid may search dir. The
// kernel applies the group's permission bits to the members of the
// directory's group and the others' bits to everyone else, so those are
// the bits that count. (A member of gid that also belongs to the
// directory's own group gets that group's bits; Listen cannot know of
// such users.)
func checkGroupReach(dir string, gid int) error {
	var st unix.Stat_t
	if err := unix.Lstat(dir, &st); err != nil {
		return &fs.PathError{Op: "lstat", Path: dir, Err: err}
	}
	search := uint32(0o001)
	if int(st.Gid) == gid {
		search = 0o010
	}
	if st.Mode&search != 0 {
		return nil
	}
	return fmt.Errorf("%w: %s has mode %04o and group %d, so members of group %d may not search it; "+
		"want group %d with mode 0750 or 0710 (chgrp %d %s && chmod 0750 %s), or remove it to have it made so",
		ErrUnreachableDir, dir, st.Mode&0o7777, st.Gid, gid, gid, gid, dir, dir)
}

// chownError explains a failed chown of what (the socket or its directory)
// to gid: the usual cause, EPERM, means the listening user is neither root
// nor a member of the group.
func chownError(what string, gid int, err error) error {
	if errors.Is(err, unix.EPERM) {
		return fmt.Errorf("%w: uid %d may not give %s to group %d; it must be a member of the group, or root: %w",
			ErrNotInGroup, os.Geteuid(), what, gid, err)
	}
	return fmt.Errorf("giving %s to group %d: %w", what, gid, err)
}
