package activation

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// entry is a service as loaded: its file, and the account to run it as,
// resolved when the file was read.
type entry struct {
	svc  *Service
	acct account
}

// account is who a service runs as.
type account struct {
	name string
	uid  int
	home string
	// cred is nil to run as busd's own user, else the credentials to
	// switch to (busd runs as root).
	cred *syscall.Credential
}

// loadDir reads every service file in dir. It fails, loading nothing,
// if dir cannot be read or users other than euid and root could write to
// it (checkDir); a file that cannot be used is left out, with its error in bad.
// Names that do not end in Suffix, and names that start with a dot (an
// editor's or an installer's temporary file), are not service files.
func loadDir(dir string, euid int) (services map[string]*entry, bad []error, err error) {
	if err := checkDir(dir, euid); err != nil {
		return nil, nil, err
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		return nil, nil, fmt.Errorf("activation: %w", err)
	}
	services = map[string]*entry{}
	for _, de := range ents {
		if !strings.HasSuffix(de.Name(), Suffix) || strings.HasPrefix(de.Name(), ".") {
			continue
		}
		e, err := loadFile(filepath.Join(dir, de.Name()), euid)
		if err != nil {
			bad = append(bad, err)
			continue
		}
		services[e.svc.Name] = e
	}
	return services, bad, nil
}

// checkDir checks that only euid and root may write to dir, the
// directory itself or, if dir is a symbolic link, the one it leads to: it
// must be owned by one of them, and not writable by its group or others.
func checkDir(dir string, euid int) error {
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		return fmt.Errorf("activation: services directory %s: %w", dir, err)
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFDIR:
		return fmt.Errorf("activation: services directory %s: %w", dir, unix.ENOTDIR)
	case int(st.Uid) != euid && st.Uid != 0 || st.Mode&0o022 != 0:
		return fmt.Errorf("%w: %s has mode %04o and owner uid %d; want no group or other write permission and owner %s: whoever may write to it may run commands as busd's user",
			ErrUntrustedDir, dir, st.Mode&0o7777, st.Uid, owners(euid))
	}
	// Its parents too, as given and as resolved: whoever may write to one
	// may rename the directory away and put one of theirs in its place,
	// or repoint a symbolic link on the way.
	abs, err := filepath.Abs(dir)
	if err != nil {
		return fmt.Errorf("activation: services directory %s: %w", dir, err)
	}
	real, err := filepath.EvalSymlinks(abs)
	if err != nil {
		return fmt.Errorf("activation: services directory %s: %w", dir, err)
	}
	for _, p := range []string{abs, real} {
		if err := checkParents(p, euid); err != nil {
			return err
		}
	}
	return nil
}

// checkParents checks that only euid and root may change what the
// directories above path (clean and absolute) hold: each is owned by one
// of them and not writable by its group or others, unless it is sticky
// (as /tmp), where others may not rename what is not theirs.
func checkParents(path string, euid int) error {
	for d := filepath.Dir(path); ; d = filepath.Dir(d) {
		var st unix.Stat_t
		if err := unix.Stat(d, &st); err != nil {
			return fmt.Errorf("activation: services directory %s: %s: %w", path, d, err)
		}
		if int(st.Uid) != euid && st.Uid != 0 || st.Mode&0o022 != 0 && st.Mode&unix.S_ISVTX == 0 {
			return fmt.Errorf("%w: the services directory %s is in %s, which has mode %04o and owner uid %d; want no group or other write permission (or the sticky bit) and owner %s: whoever may write to it may replace the services directory",
				ErrUntrustedDir, path, d, st.Mode&0o7777, st.Uid, owners(euid))
		}
		if d == "/" || d == "." {
			return nil
		}
	}
}

// owners spells who may own a services directory or file.
func owners(euid int) string {
	if euid == 0 {
		return "root"
	}
	return fmt.Sprintf("uid %d (busd's) or root", euid)
}

// loadFile reads, parses and resolves one service file. The file must be
// a regular file, not a symbolic link, owned by euid or root, and not
// writable by its group or others.
func loadFile(path string, euid int) (*entry, error) {
	fd, err := unix.Open(path, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		if errors.Is(err, unix.ELOOP) {
			return nil, &FileError{path, 0, fmt.Errorf("%w: a symbolic link: put the file itself in the directory", ErrUntrustedDir)}
		}
		return nil, &FileError{path, 0, err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, &FileError{path, 0, err}
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		return nil, &FileError{path, 0, errors.New("not a regular file")}
	case int(st.Uid) != euid && st.Uid != 0 || st.Mode&0o022 != 0:
		return nil, &FileError{path, 0, fmt.Errorf("%w: mode %04o and owner uid %d; want no group or other write permission and owner %s",
			ErrUntrustedDir, st.Mode&0o7777, st.Uid, owners(euid))}
	}
	svc, err := Parse(path, io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	e := &entry{svc: svc}
	if svc.Exec != nil {
		if e.acct, err = resolveUser(svc.User, euid); err != nil {
			return nil, &FileError{path, 0, err}
		}
	}
	return e, nil
}

// resolveUser finds the account a service runs as: spec, a user name or
// a numeric uid, or busd's own (euid) if spec is "". Only root may run a
// service as another user.
func resolveUser(spec string, euid int) (account, error) {
	var (
		u   *user.User
		err error
	)
	switch _, nerr := strconv.Atoi(spec); {
	case spec == "":
		u, err = user.LookupId(strconv.Itoa(euid))
		if err != nil { // busd's own user need not be in the user database
			return account{name: strconv.Itoa(euid), uid: euid, home: ownHome()}, nil
		}
	case nerr == nil:
		u, err = user.LookupId(spec)
	default:
		u, err = user.Lookup(spec)
	}
	if err != nil {
		return account{}, fmt.Errorf("user %q: %w", spec, err)
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	a := account{name: u.Username, uid: uid, home: u.HomeDir}
	if a.home == "" {
		a.home = "/"
	}
	switch {
	case uid == euid:
		return a, nil
	case euid != 0:
		return account{}, fmt.Errorf("user %q (uid %d) is not busd's user (uid %d): only a busd running as root runs services as other users", spec, uid, euid)
	}
	a.cred = &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}
	gids, err := u.GroupIds()
	if err != nil {
		return account{}, fmt.Errorf("user %q: its groups: %w", spec, err)
	}
	for _, g := range gids {
		if n, err := strconv.Atoi(g); err == nil && !slices.Contains(a.cred.Groups, uint32(n)) {
			a.cred.Groups = append(a.cred.Groups, uint32(n))
		}
	}
	return a, nil
}

// ownHome is busd's home, for services run as its user: $HOME, else "/".
func ownHome() string {
	if h := os.Getenv("HOME"); filepath.IsAbs(h) {
		return h
	}
	return "/"
}
