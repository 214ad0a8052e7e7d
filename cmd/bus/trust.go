package main

import (
	"fmt"
	"strconv"
	"strings"
)

// uids is the value of -trust: numeric uids, comma-separated. Names are
// not taken: a name is looked up in files another user may control, a
// number is what the kernel reports.
type uids []int

func (u *uids) String() string {
	s := make([]string, len(*u))
	for i, v := range *u {
		s[i] = strconv.Itoa(v)
	}
	return strings.Join(s, ",")
}

func (u *uids) Set(v string) error {
	for f := range strings.SplitSeq(v, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 0 {
			return fmt.Errorf("%q is not a numeric uid (names are not taken; 'id -u NAME' gives the number)", f)
		}
		*u = append(*u, n)
	}
	return nil
}
