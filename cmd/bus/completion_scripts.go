package main

// The templates of completion.go, one a shell. Each walks the words before
// the cursor the same way: a value flag (--x counts as -x) skips the word
// after it, another flag is passed over, the first other word is the
// command and the words after it its arguments.

const bashScript = `# bash completion for bus. Load it with: source <(bus completion bash)
# or save it as bus in ~/.local/share/bash-completion/completions.
_bus() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    [[ $prev == --?* ]] && prev=${prev#-}
    case $prev in
{{- if .DirFlags}}
        {{join .DirFlags "|"}}) mapfile -t COMPREPLY < <(compgen -d -- "$cur"); return ;;
{{- end}}
{{- if .FileFlags}}
        {{join .FileFlags "|"}}) compopt -o filenames 2>/dev/null; mapfile -t COMPREPLY < <(compgen -f -- "$cur"); return ;;
{{- end}}
        {{join .OtherValueFlags "|"}}) COMPREPLY=(); return ;;
    esac
    local cmd= word i args=0
    for ((i = 1; i < COMP_CWORD; i++)); do
        word=${COMP_WORDS[i]}
        [[ $word == --?* ]] && word=${word#-}
        case $word in
            {{join .ValueFlags "|"}}) ((i++)) ;;
            -*) ;;
            *) if [[ -z $cmd ]]; then cmd=$word; else ((args++)); fi ;;
        esac
    done
    local flags= words=
    case $cmd in
        '') flags={{quote (flagNames .Conn)}}; words={{quote (commandNames .Commands)}} ;;
{{- range .Commands}}
        {{.Name}}) flags={{quote (flagNames .Flags)}}{{if .Choices}}; ((args == 0)) && words={{quote (join .Choices " ")}}{{end}} ;;
{{- end}}
    esac
    if [[ $cur == -* ]]; then
        mapfile -t COMPREPLY < <(compgen -W "$flags" -- "$cur")
    else
        mapfile -t COMPREPLY < <(compgen -W "$words" -- "$cur")
    fi
}
complete -F _bus bus
`

const zshScript = `#compdef bus
# zsh completion for bus. Load it with: source <(bus completion zsh)
# after compinit, or save it as _bus in a directory of $fpath.
_bus() {
    local cur=${words[CURRENT]} prev=${words[CURRENT-1]}
    [[ $prev == --?* ]] && prev=${prev#-}
    case $prev in
{{- if .DirFlags}}
        ({{join .DirFlags "|"}}) _directories; return ;;
{{- end}}
{{- if .FileFlags}}
        ({{join .FileFlags "|"}}) _files; return ;;
{{- end}}
        ({{join .OtherValueFlags "|"}}) return ;;
    esac
    local cmd= word
    local -i i args=0
    for (( i = 2; i < CURRENT; i++ )); do
        word=${words[i]}
        [[ $word == --?* ]] && word=${word#-}
        case $word in
            ({{join .ValueFlags "|"}}) (( i++ )) ;;
            (-*) ;;
            (*) if [[ -z $cmd ]]; then cmd=$word; else (( args++ )); fi ;;
        esac
    done
    local -a flags choices
    case $cmd in
        ('')
            flags=({{range .Conn}}
                {{quote (describe .Name .Doc)}}{{end}}
            )
            choices=({{range .Commands}}
                {{quote (describe .Name .Doc)}}{{end}}
            ) ;;
{{- range .Commands}}
        ({{.Name}})
            flags=({{range .Flags}}
                {{quote (describe .Name .Doc)}}{{end}}
            ){{if .Choices}}
            (( args == 0 )) && choices=({{range .Choices}} {{.}}{{end}}){{end}} ;;
{{- end}}
    esac
    if [[ $cur == -* ]]; then
        _describe -t flags flag flags
    elif (( ${#choices} )); then
        _describe -t values value choices
    fi
}
if [[ $funcstack[1] == _bus ]]; then
    _bus "$@"
else
    compdef _bus bus
fi
`

const fishScript = `# fish completion for bus. Load it with: bus completion fish | source
# or save it as ~/.config/fish/completions/bus.fish.

# __bus_at CMD [N]: the command on the line is CMD ('' for none yet), with
# N arguments after it so far if N is given.
function __bus_at -a want n
    set -l tokens (commandline -opc)
    set -e tokens[1]
    set -l cmd ''
    set -l args 0
    set -l skip 0
    for t in $tokens
        if test $skip = 1
            set skip 0
            continue
        end
        switch (string replace -r -- '^--(.)' '-$1' $t)
            case {{join .ValueFlags " "}}
                set skip 1
            case '-*'
            case '*'
                if test -z "$cmd"
                    set cmd $t
                else
                    set args (math $args + 1)
                end
        end
    end
    test "$cmd" = "$want"; or return 1
    test -z "$n"; or test $args = $n
end

complete -c bus -f
{{- range .Conn}}
complete -c bus {{fishFlag .}}
{{- end}}
{{- range .Commands}}
complete -c bus -n "__bus_at ''" -a {{.Name}} -d {{quote .Doc}}
{{- end}}
{{- range $c := .Commands}}
{{- range $c.Own}}
complete -c bus -n '__bus_at {{$c.Name}}' {{fishFlag .}}
{{- end}}
{{- if .Choices}}
complete -c bus -n '__bus_at {{.Name}} 0' -a {{quote (join .Choices " ")}}
{{- end}}
{{- end}}
`
