#!/bin/sh
# Usage: manpage.sh NAME SUMMARY SYNOPSIS SEEALSO <HELP >NAME.1
#
# Writes a section 1 man page whose description is a command's help text,
# as it prints it (make install runs it on bus help and busd -h), so the
# page says what the command's own help says and cannot drift from it.
set -eu
[ $# -eq 4 ] || { echo "usage: $0 NAME SUMMARY SYNOPSIS SEEALSO <HELP" >&2; exit 2; }
name=$1 summary=$2 synopsis=$3 seealso=$4

# roff: a backslash is \e, a hyphen \- (else groff may print a typographic
# hyphen, and a flag copied from the page would not work), and a line that
# starts with . or ' would be a request: \& before it makes it text.
roff() { sed -e 's/\\/\\e/g' -e 's/-/\\-/g' -e "s/^[.']/\\\\\\&&/"; }

upper=$(printf '%s' "$name" | tr '[:lower:]' '[:upper:]')
printf '.TH %s 1 "" "busd" "User Commands"\n' "$upper"
printf '.SH NAME\n%s \\- %s\n' "$name" "$(printf '%s' "$summary" | roff)"
printf '.SH SYNOPSIS\n.B %s\n' "$(printf '%s' "$synopsis" | roff)"
printf '.SH DESCRIPTION\n.nf\n'
help=$(roff)
[ -n "$help" ] || { echo "$0: no help text for $name on stdin" >&2; exit 1; }
printf '%s\n' "$help"
printf '.fi\n.SH SEE ALSO\n.BR %s (1)\n' "$seealso"
