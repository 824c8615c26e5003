// Package images builds spins: images layered on a published base (a stage3 from a registry,
// or any OCI image) by an ordered list of steps, defined in YAML in the style of the stage
// recipes. Copy and run steps each make one layer; env, workdir, entrypoint, cmd and labels
// steps change the config and leave a history entry. Steps are cached by key like stages:
// a step whose base and inputs did not change reuses its layer from the last build.
package images

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/oci/packages"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/stages"
	"go.yaml.in/yaml/v3"
)

// Kind is what a step does.
type Kind string

const (
	Copy       Kind = "copy"
	Run        Kind = "run"
	Env        Kind = "env"
	Workdir    Kind = "workdir"
	Entrypoint Kind = "entrypoint"
	Cmd        Kind = "cmd"
	Labels     Kind = "labels"
	// Packages stacks packages from a repository (an index of package images, in the store
	// or a registry), resolved with what they need: one layer each, the package's own blob.
	Packages Kind = "packages"
)

// DefaultRepository is the repository a packages step takes its packages from unless it
// names one: stage3's, as the small profile's build makes it.
const DefaultRepository = "stage3/packages"

// kinds are the step kinds, each with the keys a step of that kind may have beside its own.
var kinds = map[Kind][]string{
	Copy:       {"to", "mode", "owner"},
	Run:        {"network"},
	Env:        nil,
	Workdir:    nil,
	Entrypoint: nil,
	Cmd:        nil,
	Labels:     nil,
	Packages:   {"from"},
}

func kindNames() string {
	var names []string
	for k := range kinds {
		names = append(names, string(k))
	}
	slices.Sort(names)
	return strings.Join(names, ", ")
}

// Spin is a loaded, checked spin definition.
type Spin struct {
	File        string // as given
	Dir         string // the directory copy sources are relative to
	Name        string
	Description string
	From        string // a registry reference or a store tag, maybe pinned @sha256:...
	FromLine    int
	Platforms   []v1.Platform
	Steps       []Step
}

// Step is one step of a spin.
type Step struct {
	Index int  // 0-based
	Line  int  // in the definition
	Kind  Kind //

	// copy
	Src, Dst   string
	Mode       *os.FileMode // files' mode (default: as on disk)
	UID, GID   int          // owner (default 0:0)
	srcDigests string       // path, mode and content digest of everything copied
	// run
	Script  string
	Network bool
	// env, labels
	Vars map[string]string
	// workdir
	Dir string
	// entrypoint, cmd
	Args []string
	// packages: their names, and the repository (a store tag or a registry reference)
	Names []string
	From  string
}

// MakesLayer reports whether the step adds a layer (copy, run) rather than changing the config.
func (s *Step) MakesLayer() bool { return s.Kind == Copy || s.Kind == Run }

// Describe is the step in a line, for history entries and progress.
func (s *Step) Describe() string {
	switch s.Kind {
	case Copy:
		return fmt.Sprintf("copy %s %s", s.Src, s.Dst)
	case Run:
		first, _, _ := strings.Cut(strings.TrimSpace(s.Script), "\n")
		if len(first) > 80 {
			first = first[:77] + "..."
		}
		return "run " + first
	case Env, Labels:
		return string(s.Kind) + " " + strings.Join(sortedPairs(s.Vars), " ")
	case Workdir:
		return "workdir " + s.Dir
	case Packages:
		return "packages " + strings.Join(s.Names, " ") + " from " + s.From
	}
	return fmt.Sprintf("%s %q", s.Kind, s.Args)
}

func sortedPairs(m map[string]string) []string {
	var out []string
	for k, v := range m {
		out = append(out, k+"="+v)
	}
	slices.Sort(out)
	return out
}

type rawSpin struct {
	Name        string      `yaml:"name"`
	Description string      `yaml:"description"`
	From        string      `yaml:"from"`
	Platforms   []string    `yaml:"platforms"`
	Steps       []yaml.Node `yaml:"steps"`
}

var ownerRE = regexp.MustCompile(`^([0-9]+):([0-9]+)$`)

// Load reads and checks the spin definition in file. Every error names the file, the line and
// the field at fault; copy sources must exist beside the definition.
func Load(file string) (*Spin, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, fmt.Errorf("spin: %w", err)
	}
	defer f.Close()
	// Read to a bound, not by its size: the definition may come through a pipe
	// (spin <(generate)), which has none.
	data, err := io.ReadAll(io.LimitReader(f, MaxSpinBytes+1))
	if err != nil {
		return nil, fmt.Errorf("spin: %w", err)
	}
	if len(data) > MaxSpinBytes {
		return nil, fmt.Errorf("spin: %s: more than the %d bytes a spin definition may have", file, MaxSpinBytes)
	}
	return Parse(file, filepath.Dir(file), data)
}

// MaxSpinBytes bounds a spin definition: its steps, not its files (copy reads those from
// beside it).
const MaxSpinBytes = 1 << 20

// Parse reads a spin definition whose copy sources are under dir.
func Parse(file, dir string, data []byte) (*Spin, error) {
	var raw rawSpin
	doc, err := stages.DecodeStrict(file, data, &raw)
	if err != nil {
		return nil, err
	}
	at := func(field string) int { return stages.LineOf(doc, field) }
	fail := func(line int, field, format string, args ...any) (*Spin, error) {
		return nil, &stages.Error{File: file, Line: line, Field: field, Msg: fmt.Sprintf(format, args...)}
	}

	base := strings.TrimSuffix(strings.TrimSuffix(filepath.Base(file), ".yaml"), ".yml")
	s := &Spin{File: file, Dir: dir, Name: raw.Name, Description: raw.Description, From: strings.TrimSpace(raw.From)}
	if s.Name == "" {
		s.Name = base
	}
	if !stages.ValidName(s.Name) {
		return fail(at("name"), "name", "%q: use lower-case letters, digits and . _ - between them", s.Name)
	}
	s.FromLine = at("from")
	if s.From == "" {
		return fail(at("from"), "from", "missing: name the base image (a registry reference or a store tag)")
	}
	for i, p := range raw.Platforms {
		pl, err := platform.Parse(p)
		if err != nil {
			return fail(at("platforms"), fmt.Sprintf("platforms[%d]", i), "%v", err)
		}
		s.Platforms = append(s.Platforms, pl)
	}
	if len(raw.Steps) == 0 {
		return fail(at("steps"), "steps", "missing: a spin needs at least one step")
	}
	for i := range raw.Steps {
		st, err := parseStep(file, dir, i, &raw.Steps[i])
		if err != nil {
			return nil, err
		}
		s.Steps = append(s.Steps, st)
	}
	return s, nil
}

func parseStep(file, dir string, i int, n *yaml.Node) (Step, error) {
	field := fmt.Sprintf("steps[%d]", i)
	st := Step{Index: i, Line: n.Line, UID: 0, GID: 0}
	fail := func(line int, f, format string, args ...any) (Step, error) {
		return Step{}, &stages.Error{File: file, Line: line, Field: f, Msg: fmt.Sprintf(format, args...)}
	}
	if n.Kind != yaml.MappingNode {
		return fail(n.Line, field, "want a mapping with one of: %s", kindNames())
	}
	// Keys are visited in the order they stand in the file, so that an error names the same
	// key (and line) on every run.
	var keys []string
	values := map[string]*yaml.Node{}
	lines := map[string]int{}
	for k := 0; k+1 < len(n.Content); k += 2 {
		key := n.Content[k].Value
		if _, dup := values[key]; dup {
			return fail(n.Content[k].Line, field+"."+key, "given twice (first on line %d)", lines[key])
		}
		keys = append(keys, key)
		values[key], lines[key] = n.Content[k+1], n.Content[k].Line
	}
	for _, k := range keys {
		if _, ok := kinds[Kind(k)]; ok {
			if st.Kind != "" {
				return fail(lines[k], field, "has both %s and %s: one kind a step", st.Kind, k)
			}
			st.Kind = Kind(k)
		}
	}
	if st.Kind == "" {
		return fail(n.Line, field, "unknown step kind (keys: %s); want one of: %s", strings.Join(slices.Sorted(slices.Values(keys)), ", "), kindNames())
	}
	for _, k := range keys {
		if Kind(k) != st.Kind && !slices.Contains(kinds[st.Kind], k) {
			return fail(lines[k], field+"."+k, "not a field of a %s step (it has: %s)", st.Kind, strings.Join(kinds[st.Kind], ", "))
		}
	}
	main := values[string(st.Kind)]
	mainField := field + "." + string(st.Kind)
	decode := func(v any, n *yaml.Node, f string) error {
		if err := n.Decode(v); err != nil {
			return &stages.Error{File: file, Line: n.Line, Field: f, Msg: strings.TrimPrefix(err.Error(), "yaml: "), Err: err}
		}
		return nil
	}
	switch st.Kind {
	case Copy:
		if err := decode(&st.Src, main, mainField); err != nil {
			return Step{}, err
		}
		to, ok := values["to"]
		if !ok {
			return fail(n.Line, field+".to", "missing: where in the image the copy goes")
		}
		if err := decode(&st.Dst, to, field+".to"); err != nil {
			return Step{}, err
		}
		if !strings.HasPrefix(st.Dst, "/") {
			return fail(to.Line, field+".to", "%q: want an absolute path in the image", st.Dst)
		}
		if filepath.IsAbs(st.Src) || !filepath.IsLocal(st.Src) {
			return fail(main.Line, mainField, "%q: want a path beside the definition, not outside it", st.Src)
		}
		digests, err := digestTree(dir, st.Src)
		if err != nil {
			return fail(main.Line, mainField, "%s: %v", st.Src, err)
		}
		st.srcDigests = digests
		if m, ok := values["mode"]; ok {
			v, err := strconv.ParseUint(m.Value, 8, 32)
			if err != nil || v > 0o7777 {
				return fail(m.Line, field+".mode", "%q: want an octal mode such as \"0644\"", m.Value)
			}
			mode := os.FileMode(v)
			st.Mode = &mode
		}
		if o, ok := values["owner"]; ok {
			m := ownerRE.FindStringSubmatch(o.Value)
			if m == nil {
				return fail(o.Line, field+".owner", "%q: want UID:GID, numeric", o.Value)
			}
			st.UID, _ = strconv.Atoi(m[1])
			st.GID, _ = strconv.Atoi(m[2])
		}
	case Run:
		if err := decode(&st.Script, main, mainField); err != nil {
			return Step{}, err
		}
		if strings.TrimSpace(st.Script) == "" {
			return fail(main.Line, mainField, "empty script")
		}
		if nw, ok := values["network"]; ok {
			if err := decode(&st.Network, nw, field+".network"); err != nil {
				return Step{}, err
			}
		}
	case Packages:
		if err := decode(&st.Names, main, mainField); err != nil {
			return Step{}, err
		}
		if len(st.Names) == 0 {
			return fail(main.Line, mainField, "want at least one package name")
		}
		for j, name := range st.Names {
			if err := packages.CheckName(name); err != nil {
				return fail(main.Line, fmt.Sprintf("%s[%d]", mainField, j), "%v", err)
			}
			if slices.Contains(st.Names[:j], name) {
				return fail(main.Line, fmt.Sprintf("%s[%d]", mainField, j), "%q is named twice", name)
			}
		}
		st.From = DefaultRepository
		if f, ok := values["from"]; ok {
			if err := decode(&st.From, f, field+".from"); err != nil {
				return Step{}, err
			}
			if st.From = strings.TrimSpace(st.From); st.From == "" {
				return fail(f.Line, field+".from", "empty: name the repository (a store tag, or a registry reference)")
			}
		}
	case Env, Labels:
		if err := decode(&st.Vars, main, mainField); err != nil {
			return Step{}, err
		}
		if len(st.Vars) == 0 {
			return fail(main.Line, mainField, "want at least one NAME: value")
		}
		for k := range st.Vars {
			if st.Kind == Env && !stages.ValidEnvKey(k) {
				return fail(main.Line, mainField+"."+k, "not a valid variable name")
			}
		}
	case Workdir:
		if err := decode(&st.Dir, main, mainField); err != nil {
			return Step{}, err
		}
		if !strings.HasPrefix(st.Dir, "/") {
			return fail(main.Line, mainField, "%q: want an absolute path", st.Dir)
		}
	case Entrypoint, Cmd:
		if err := decode(&st.Args, main, mainField); err != nil {
			return Step{}, err
		}
	}
	return st, nil
}

// digestTree describes everything under p (a file or a directory): each entry's relative
// path, type, mode and content digest, in name order. It changes exactly when a copy of p
// would make another layer.
func digestTree(dir, src string) (string, error) {
	var b strings.Builder
	err := walkContext(dir, src, func(fsys fs.FS, path, rel string, fi fs.FileInfo) error {
		fmt.Fprintf(&b, "%s %s", rel, fi.Mode())
		switch {
		case fi.Mode().IsRegular():
			f, err := fsys.Open(path)
			if err != nil {
				return err
			}
			h := sha256.New()
			_, err = io.Copy(h, f)
			f.Close()
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " %s", hex.EncodeToString(h.Sum(nil)))
		case fi.Mode()&fs.ModeSymlink != 0:
			target, err := fs.ReadLink(fsys, path)
			if err != nil {
				return err
			}
			fmt.Fprintf(&b, " -> %s", target)
		case !fi.IsDir():
			return fmt.Errorf("%s: only files, directories and symlinks can be copied", rel)
		}
		b.WriteByte('\n')
		return nil
	})
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return "", fmt.Errorf("no such file or directory beside the definition")
		}
		return "", err
	}
	return b.String(), nil
}

// walkContext calls fn for src (a path relative to the spin's directory dir) and, for a
// directory, everything below it in lexical order. The directory is read as a root, as a
// build context is: a symlink in src's path that leads out of dir is an error, and symlinks
// inside the copied tree are reported as symlinks, never followed. fn gets the context's
// FS, the path in it, the path relative to src ("." for src itself) and the entry's Lstat.
func walkContext(dir, src string, fn func(fsys fs.FS, path, rel string, fi fs.FileInfo) error) error {
	root, err := os.OpenRoot(dir)
	if err != nil {
		return err
	}
	defer root.Close()
	fsys := root.FS()
	src = filepath.ToSlash(filepath.Clean(src))
	top, err := fs.Lstat(fsys, src)
	if err != nil {
		return contextError("", err) // the caller names src
	}
	if top.Mode()&fs.ModeSymlink != 0 {
		return fn(fsys, src, ".", top) // copied as the symlink it is
	}
	return fs.WalkDir(fsys, src, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return contextError(path, err)
		}
		fi, err := fs.Lstat(fsys, path)
		if err != nil {
			return contextError(path, err)
		}
		rel := "."
		if path != src {
			rel = strings.TrimPrefix(path, src+"/")
		}
		return fn(fsys, path, rel, fi)
	})
}

// contextError says that a path leads out of the spin's directory (os.Root refuses it with
// "path escapes from parent") in the spin's terms.
func contextError(path string, err error) error {
	if stages.LeadsOutOfRoot(err) {
		err = errors.New("a symlink on the way leads out of the spin's directory: refused")
	}
	if path == "" {
		return err
	}
	return fmt.Errorf("%s: %w", path, err)
}
