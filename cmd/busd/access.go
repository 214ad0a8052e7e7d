package main

import (
	"fmt"
	"math"
	"os/user"
	"strconv"
	"strings"
)

// parseGroup resolves -group: a number is a gid as it stands, anything
// else a group name, looked up once now (the kernel checks the socket by
// number). "" is no group: -1.
func parseGroup(s string) (int, error) {
	if s == "" {
		return -1, nil
	}
	if n, err := strconv.ParseUint(s, 10, 32); err == nil {
		if n == math.MaxUint32 { // (gid_t)-1 means "no change" to chown(2)
			return -1, fmt.Errorf("-group %s is not a group id: it is the kernel's \"no group\"; give a real group's name or gid", s)
		}
		return int(n), nil
	}
	g, err := user.LookupGroup(s)
	if err != nil {
		return -1, fmt.Errorf("-group %q: %w; give a group name 'getent group' lists, or a numeric gid", s, err)
	}
	gid, err := strconv.Atoi(g.Gid)
	if err != nil {
		return -1, fmt.Errorf("-group %q: its gid %q is not a number: %w", s, g.Gid, err)
	}
	return gid, nil
}

// parseIDs parses the comma-separated numeric ids of -allow-uid or
// -allow-gid (name). Names are refused rather than looked up: what the
// broker compares are the numbers the kernel reports, and a name can come
// to mean another number when the user database changes (as in policies).
func parseIDs(name, list string) ([]uint32, error) {
	if list == "" {
		return nil, nil
	}
	var ids []uint32
	for _, f := range strings.Split(list, ",") {
		f = strings.TrimSpace(f)
		n, err := strconv.ParseUint(f, 10, 32)
		if err != nil || n == math.MaxUint32 {
			return nil, fmt.Errorf("-%s: %q is not a numeric id; allow-lists take numbers, not names (id -u NAME, getent group NAME)", name, f)
		}
		ids = append(ids, uint32(n))
	}
	return ids, nil
}
