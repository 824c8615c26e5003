package packages

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/oci/platform"
)

// Resolve picks from a repository's entries the packages names asks for, for platform p,
// with everything they depend on and need, and returns them in assembly order: each package
// after those it requires (a cycle is broken by name), ties by name, so that one set always
// gives one order. A requirement is a package name or a provider; what nothing provides, a
// provider two packages offer when neither is already chosen, and a package that exists only
// for other platforms are errors, every one of them reported, each naming who required what.
func Resolve(entries []Entry, names []string, p v1.Platform) ([]Entry, error) {
	byName := map[string]Entry{}
	providers := map[string][]Entry{}
	elsewhere := map[string][]string{} // name -> the platforms it has, when not p
	for _, e := range entries {
		if !platform.Equal(e.Platform, p) {
			elsewhere[e.Name] = append(elsewhere[e.Name], platform.String(e.Platform))
			continue
		}
		byName[e.Name] = e
		for _, pr := range e.Provides {
			providers[pr] = append(providers[pr], e)
		}
	}
	chosen := map[string]Entry{}
	requires := map[string][]string{} // package -> the packages it requires
	var problems []string
	type want struct{ what, by string }
	queue := make([]want, 0, len(names))
	for _, n := range names {
		queue = append(queue, want{n, ""})
	}
	for len(queue) > 0 {
		w := queue[0]
		queue = queue[1:]
		e, err := pick(w.what, byName, providers, chosen, elsewhere, p)
		if err != nil {
			who := "asked for"
			if w.by != "" {
				who = "package " + w.by + " needs"
			}
			problems = append(problems, fmt.Sprintf("%s %s: %v", who, w.what, err))
			continue
		}
		if w.by != "" && w.by != e.Name && !slices.Contains(requires[w.by], e.Name) {
			requires[w.by] = append(requires[w.by], e.Name)
		}
		if _, done := chosen[e.Name]; done {
			continue
		}
		chosen[e.Name] = e
		for _, r := range append(slices.Clone(e.Depends), e.Needs...) {
			queue = append(queue, want{r, e.Name})
		}
	}
	if len(problems) > 0 {
		slices.Sort(problems)
		return nil, fmt.Errorf("resolve %s for %s: %s", strings.Join(names, ", "), platform.String(p), strings.Join(slices.Compact(problems), "; "))
	}
	return order(chosen, requires), nil
}

// pick is the package that satisfies requirement r.
func pick(r string, byName map[string]Entry, providers map[string][]Entry, chosen map[string]Entry, elsewhere map[string][]string, p v1.Platform) (Entry, error) {
	if e, ok := byName[r]; ok {
		return e, nil
	}
	cands := providers[r]
	for _, c := range cands {
		if _, ok := chosen[c.Name]; ok {
			return c, nil
		}
	}
	switch len(cands) {
	case 1:
		return cands[0], nil
	case 0:
		if plats, ok := elsewhere[r]; ok {
			return Entry{}, fmt.Errorf("no package %s for %s (it is built for %s)", r, platform.String(p), strings.Join(plats, ", "))
		}
		return Entry{}, errors.New("no package provides it")
	}
	var names []string
	for _, c := range cands {
		names = append(names, c.Name)
	}
	slices.Sort(names)
	return Entry{}, fmt.Errorf("provided by %s: name the one to use", strings.Join(names, " and "))
}

// order is chosen in assembly order: a package after those it requires, ties (and a cycle)
// broken by name.
func order(chosen map[string]Entry, requires map[string][]string) []Entry {
	pending := map[string]int{} // package -> how many of its requirements are not placed yet
	users := map[string][]string{}
	for n := range chosen {
		pending[n] = len(requires[n])
		for _, r := range requires[n] {
			users[r] = append(users[r], n)
		}
	}
	out := make([]Entry, 0, len(chosen))
	for len(pending) > 0 {
		var ready []string
		for n, c := range pending {
			if c == 0 {
				ready = append(ready, n)
			}
		}
		if len(ready) == 0 { // a cycle: the first by name goes first
			ready = []string{slices.Min(slices.Collect(maps.Keys(pending)))}
		}
		slices.Sort(ready)
		n := ready[0]
		out = append(out, chosen[n])
		delete(pending, n)
		for _, u := range users[n] {
			if _, ok := pending[u]; ok {
				pending[u]--
			}
		}
	}
	return out
}
