package main

import (
	"os"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	"github.com/spf13/pflag"
)

// pushFlags are the push flags of build and spin, in both spellings: ours (--push REF) and
// buildx's (-t REF --push, -t repeatable).
type pushFlags struct {
	push string   // "" when not given; pushToReferences when given without a reference
	refs []string // -t
}

// pushToReferences is --push given alone: push to each -t reference. (Help shows it as the
// flag's default when given without a value; no reference is spelt so.)
const pushToReferences = "(each -t)"

func (p *pushFlags) register(fs *pflag.FlagSet, what string) {
	fs.StringVar(&p.push, "push", "", "push "+what+", one image per platform, as one multi-platform index: to REF (--push REF), or alone to each -t reference")
	fs.Lookup("push").NoOptDefVal = pushToReferences
	fs.StringArrayVarP(&p.refs, "reference", "t", nil, "registry reference (REGISTRY/REPO[:TAG]) --push sends "+what+" to, as buildx's -t (repeatable)")
}

// references are where the result goes: --push's reference and each -t, in that order (none
// without --push). parse reads a reference as the registry client does (--insecure-registry).
func (p *pushFlags) references(command string, parse func(string) (name.Reference, error)) ([]name.Reference, error) {
	if p.push == "" {
		if len(p.refs) > 0 {
			return nil, usagef("%s: -t %s names where --push sends the result: add --push (nothing is pushed without it)", command, p.refs[0])
		}
		return nil, nil
	}
	words := p.refs
	if p.push != pushToReferences {
		words = append([]string{p.push}, p.refs...)
	}
	if len(words) == 0 {
		return nil, usagef("%s: --push without a reference: give --push REGISTRY/REPO[:TAG], or -t REGISTRY/REPO[:TAG] with --push", command)
	}
	var out []name.Reference
	for _, w := range words {
		ref, err := parse(w)
		if err != nil {
			return nil, usagef("%s: --push: %v", command, err)
		}
		out = append(out, ref)
	}
	return out, nil
}

// joinPushValue rewrites "--push WORD" as "--push=WORD" when WORD is a registry reference that
// names its registry (REGISTRY/REPO[:TAG], the registry a host with a dot or a port, or
// localhost, as docker tells them apart) and no file of that name exists: --push takes a
// value without "=" only then, and never a stage name or a spin file.
func joinPushValue(args []string) []string {
	out := make([]string, 0, len(args))
	for i := 0; i < len(args); i++ {
		if args[i] == "--" {
			return append(out, args[i:]...)
		}
		if args[i] == "--push" && i+1 < len(args) && namesItsRegistry(args[i+1]) {
			out = append(out, "--push="+args[i+1])
			i++
			continue
		}
		out = append(out, args[i])
	}
	return out
}

func namesItsRegistry(word string) bool {
	host, rest, ok := strings.Cut(word, "/")
	if !ok || rest == "" || host == "." || host == ".." || !(strings.ContainsAny(host, ".:") || host == "localhost") {
		return false
	}
	if _, err := os.Lstat(word); err == nil {
		return false
	}
	_, err := name.ParseReference(word, name.Insecure)
	return err == nil
}
