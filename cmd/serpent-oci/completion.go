package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"sort"
	"strings"

	"github.com/spf13/pflag"

	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/stages"
)

// completeCommand is the hidden command the completion scripts call with the words typed so
// far (the last one the word being completed, maybe empty). It prints the candidates, one a
// line: the logic lives here, once, and each shell's script only asks (cobra's __complete).
const completeCommand = "__complete"

func completionCommand() *command {
	return &command{
		name:    "completion",
		args:    "bash|zsh|fish",
		summary: "Print a shell completion script",
		long: `The script completes commands, flags, the values of --platform, --profile, --format,
--network and --progress, the stages of the recipe set (for build, plan, shell, verify and
sources; --profile and --stages are honoured) and the store's tags (for run, inspect, export,
push, tag...). It asks serpent-oci itself, so it always knows what this version knows; where
serpent-oci has nothing to offer (a directory, a file) bash and zsh complete file names.`,
		example: `source <(serpent-oci completion bash)                  # this shell; add it to ~/.bashrc to keep it
serpent-oci completion zsh > "${fpath[1]}/_serpent-oci"   # zsh, then restart it
serpent-oci completion fish > ~/.config/fish/completions/serpent-oci.fish`,
		noStore: true,
		run: func(ctx context.Context, e *env, args []string) error {
			if len(args) != 1 {
				return usagef("completion: want one shell (bash, zsh or fish), got %d arguments", len(args))
			}
			script, ok := completionScripts[args[0]]
			if !ok {
				return usagef("completion: unknown shell %q: want bash, zsh or fish", args[0])
			}
			_, err := io.WriteString(e.stdout, script)
			return err
		},
	}
}

var completionScripts = map[string]string{
	// COMP_WORDBREAKS splits --platform=linux/amd64 and host:port references into several
	// words; the script joins them back, as bash-completion's _get_comp_words_by_ref -n =: does.
	"bash": `# bash completion for serpent-oci (serpent-oci completion bash)
_serpent_oci() {
	local cur words=() i w
	for ((i = 1; i <= COMP_CWORD; i++)); do
		w=${COMP_WORDS[i]}
		if [[ ${#words[@]} -gt 0 && ( $w == "=" || $w == ":" || ${COMP_WORDS[i-1]} == "=" || ${COMP_WORDS[i-1]} == ":" ) ]]; then
			words[${#words[@]}-1]+=$w
		else
			words+=("$w")
		fi
	done
	[[ ${#words[@]} -eq 0 ]] && words=("")
	cur=${words[${#words[@]}-1]}
	local IFS=$'\n'
	COMPREPLY=($(command serpent-oci __complete "${words[@]}" 2>/dev/null))
	# Candidates are whole words; bash replaces only the part after the last break character.
	local prefix=${cur%"${COMP_WORDS[COMP_CWORD]}"}
	if [[ -n $prefix ]]; then
		for i in "${!COMPREPLY[@]}"; do COMPREPLY[i]=${COMPREPLY[i]#"$prefix"}; done
	fi
}
complete -o default -F _serpent_oci serpent-oci
`,
	"zsh": `#compdef serpent-oci
# zsh completion for serpent-oci (serpent-oci completion zsh)
_serpent_oci() {
	local -a candidates
	candidates=("${(@f)$(command serpent-oci __complete "${(@)words[2,CURRENT]}" 2>/dev/null)}")
	candidates=(${candidates:#})
	if (( ${#candidates} )); then
		compadd -Q -- "${candidates[@]}"
	else
		_files
	fi
}
if [[ $zsh_eval_context[-1] == loadautofunc ]]; then
	_serpent_oci "$@"
else
	compdef _serpent_oci serpent-oci
fi
`,
	"fish": `# fish completion for serpent-oci (serpent-oci completion fish)
function __serpent_oci_complete
	set -l words (commandline -opc) (commandline -ct)
	command serpent-oci __complete $words[2..-1] 2>/dev/null
end
complete -c serpent-oci -f -a '(__serpent_oci_complete)'
`,
}

// runComplete prints the candidates for the last of words (see completeCommand).
func runComplete(e *env, words []string) error {
	for _, c := range complete(e, words) {
		fmt.Fprintln(e.stdout, c)
	}
	return nil
}

// flagValues are the candidates for the values of flags that take one of a few words.
var flagValues = map[string][]string{
	"platform":    {"linux/amd64", "linux/arm64"},
	"format":      {"table", "json"},
	"network":     {"none", "host"},
	"progress":    {"auto", "plain", "tty"},
	"log-level":   {"debug", "info", "warn", "error"},
	"log-format":  {"text", "json"},
	"compression": {"gzip", "zstd", "none"},
}

// complete returns the candidates for the last of words, given the ones before it.
func complete(e *env, words []string) []string {
	if len(words) == 0 {
		words = []string{""}
	}
	cur, before := words[len(words)-1], words[:len(words)-1]
	var o globalOptions
	global := globalFlags(e, &o)
	i, pending := skipFlags(global, before)
	_ = global.Parse(before[:i]) // for --store
	if pending != nil {
		return withPrefix(cur, valuesOf(pending.Name, nil))
	}
	if i == len(before) { // the command's own name
		if strings.HasPrefix(cur, "-") {
			return withPrefix(cur, flagNames(global))
		}
		var names []string
		for _, c := range commands() {
			names = append(names, c.name)
		}
		return withPrefix(cur, names)
	}
	var c *command
	for _, cc := range commands() {
		if cc.name == before[i] {
			c = cc
		}
	}
	if c == nil {
		return nil
	}
	fs, _ := commandFlags(e, c)
	rest := before[i+1:]
	var positional []string
	for j := 0; j < len(rest); j++ {
		w := rest[j]
		if w == "--" {
			return nil // a command for the container: the shell's own completion
		}
		if !strings.HasPrefix(w, "-") || w == "-" {
			positional = append(positional, w)
			continue
		}
		if f := lookupFlag(fs, w); f != nil && takesValue(f) && !strings.Contains(w, "=") {
			if j == len(rest)-1 {
				return withPrefix(cur, valuesOf(f.Name, fs))
			}
			j++
		}
	}
	// Parsed for the values that change the candidates (--store, --profile, --stages).
	_ = fs.Parse(append(append([]string{}, rest...), "--"))
	if strings.HasPrefix(cur, "-") {
		if name, _, ok := strings.Cut(cur, "="); ok {
			if f := lookupFlag(fs, name); f != nil {
				return withPrefix(cur, eachPrefixed(name+"=", valuesOf(f.Name, fs)))
			}
			return nil
		}
		return withPrefix(cur, flagNames(fs))
	}
	args := strings.Fields(c.args)
	if len(positional) >= len(args) {
		return nil
	}
	return withPrefix(cur, argValues(e, c.name, args[len(positional)], fs))
}

// skipFlags walks the flags at the start of words, returning the index of the first word that
// is not one, or the flag whose value words ends before.
func skipFlags(fs *pflag.FlagSet, words []string) (int, *pflag.Flag) {
	i := 0
	for i < len(words) && strings.HasPrefix(words[i], "-") && words[i] != "-" {
		f := lookupFlag(fs, words[i])
		if f != nil && takesValue(f) && !strings.Contains(words[i], "=") {
			if i+1 == len(words) {
				return i, f
			}
			i++
		}
		i++
	}
	return i, nil
}

func lookupFlag(fs *pflag.FlagSet, w string) *pflag.Flag {
	name, _, _ := strings.Cut(w, "=")
	if strings.HasPrefix(name, "--") {
		return fs.Lookup(name[2:])
	}
	if len(name) == 2 {
		return fs.ShorthandLookup(name[1:])
	}
	return nil
}

// takesValue says whether f takes the next word as its value (not a boolean flag).
func takesValue(f *pflag.Flag) bool { return f.NoOptDefVal == "" }

func flagNames(fs *pflag.FlagSet) []string {
	var out []string
	fs.VisitAll(func(f *pflag.Flag) {
		if f.Hidden {
			return
		}
		out = append(out, "--"+f.Name)
		if f.Shorthand != "" {
			out = append(out, "-"+f.Shorthand)
		}
	})
	return out
}

// valuesOf is the candidates for flag name's value; fs, when not nil, is the command's
// flags as typed so far (for --profile's recipe set).
func valuesOf(name string, fs *pflag.FlagSet) []string {
	if name == "profile" {
		return profiles(fs)
	}
	return flagValues[name]
}

// stageCommands take a stage of the recipe set as their TARGET or STAGE (tag's TARGET is a
// new tag).
var stageCommands = []string{"build", "plan", "verify", "sources", "shell"}

// argValues is the candidates for a positional argument of command whose synopsis word is
// word.
func argValues(e *env, command, word string, fs *pflag.FlagSet) []string {
	switch {
	case word == strings.ToLower(word) && !strings.ContainsAny(word, "[.-"):
		return strings.Split(word, "|") // a subcommand: build, fetch|list, bash|zsh|fish
	case word == "TAG" || word == "SOURCE":
		return tags(e)
	case (word == "TARGET" || word == "STAGE") && slices.Contains(stageCommands, command):
		return stageNames(fs)
	}
	return nil
}

// tags lists the store's tags, by name and in full (NAME@OS-ARCH), or nothing when the
// store cannot be read.
func tags(e *env) []string {
	dir, err := e.storePath()
	if err != nil {
		return nil
	}
	st, missing, err := store.OpenOrEmpty(context.Background(), dir)
	if err != nil || missing {
		return nil
	}
	ts, err := st.Tags()
	if err != nil {
		return nil
	}
	seen := map[string]bool{}
	var out []string
	for _, t := range ts {
		for _, s := range []string{t.Ref.Name, t.Ref.String()} {
			if !seen[s] {
				seen[s] = true
				out = append(out, s)
			}
		}
	}
	return out
}

// recipeFS is the recipe set the command's --stages names, else the built-in one.
func recipeFS(fs *pflag.FlagSet) (set func() (*stages.Set, error), profilesOf func() []string) {
	dir, profile := "", stages.DefaultProfile
	if fs != nil {
		if f := fs.Lookup("stages"); f != nil {
			dir = f.Value.String()
		}
		if f := fs.Lookup("profile"); f != nil {
			profile = f.Value.String()
		}
	}
	g := &graphFlags{stagesDir: dir, profile: profile}
	return g.loadSet, func() []string {
		if dir == "" {
			return stages.Profiles(stages.Embedded())
		}
		root, err := os.OpenRoot(dir)
		if err != nil {
			return nil
		}
		defer root.Close()
		return stages.Profiles(root.FS())
	}
}

func profiles(fs *pflag.FlagSet) []string {
	_, p := recipeFS(fs)
	return p()
}

func stageNames(fs *pflag.FlagSet) []string {
	load, _ := recipeFS(fs)
	set, err := load()
	if err != nil {
		return nil
	}
	names := set.Names()
	sort.Strings(names)
	return names
}

func eachPrefixed(p string, words []string) []string {
	out := make([]string, len(words))
	for i, w := range words {
		out[i] = p + w
	}
	return out
}

// withPrefix keeps the candidates that start with cur.
func withPrefix(cur string, candidates []string) []string {
	var out []string
	for _, c := range candidates {
		if strings.HasPrefix(c, cur) {
			out = append(out, c)
		}
	}
	return out
}
