package stages

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"path"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"

	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/serpent-os/serpent-oci/oci/filekind"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"go.yaml.in/yaml/v3"
)

// TargetsFile is the per-platform table of target variables in a recipe set.
const TargetsFile = "targets.yaml"

// Target is one row of the target table: the variables stages read for a target platform.
// Each is given to the stage as SERPENT_TARGET_<NAME> (upper case, "-" as "_").
type Target struct {
	Platform v1.Platform
	Vars     map[string]string // at least arch and triple
}

// Env is the target's variables as a stage sees them, sorted by name.
func (t Target) Env() []string {
	return append([]string{"SERPENT_TARGET=" + platform.String(t.Platform)}, t.VarsAs("SERPENT_TARGET_")...)
}

// VarsAs is the target's variables with prefix before each name, sorted by name: a stage whose
// base is built for the host (base-target: host) reads the host's row as SERPENT_HOST_<NAME>.
func (t Target) VarsAs(prefix string) []string {
	keys := make([]string, 0, len(t.Vars))
	for k := range t.Vars {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	env := make([]string, 0, len(keys))
	for _, k := range keys {
		env = append(env, prefix+strings.ToUpper(strings.ReplaceAll(k, "-", "_"))+"="+t.Vars[k])
	}
	return env
}

// Set is a loaded, validated recipe set.
type Set struct {
	Recipes map[string]*Recipe
	Targets map[string]Target // by platform.String
	// Profile is the profile loaded ("" for the set's own recipes alone), and Images the
	// image names its profile.yaml maps (`from: image:seed` builds on seed-full in the full
	// profile), as --seed does for seed.
	Profile string
	Images  map[string]string
	without []string // the set's recipes the profile leaves out
}

// DefaultProfile is the set's own recipes, with no profile directory over them.
const DefaultProfile = "small"

// ProfilesDir holds a recipe set's profiles: profiles/NAME/ has a profile.yaml and recipes
// (with their scripts) that replace or add to the set's own. files: entries stay relative to
// the set's root, so a profile's recipe can use the set's shared files.
const ProfilesDir = "profiles"

// ProfileFile describes a profile.
const ProfileFile = "profile.yaml"

type rawProfile struct {
	Description string            `yaml:"description"`
	Images      map[string]string `yaml:"images"`
	Without     []string          `yaml:"without"`
}

// Profiles lists the profiles of the set at fsys: DefaultProfile, then each directory under
// ProfilesDir that has a ProfileFile, by name.
func Profiles(fsys fs.FS) []string {
	out := []string{DefaultProfile}
	entries, _ := fs.ReadDir(fsys, ProfilesDir)
	for _, e := range entries {
		if e.IsDir() && e.Name() != DefaultProfile {
			if _, err := fs.Stat(fsys, path.Join(ProfilesDir, e.Name(), ProfileFile)); err == nil {
				out = append(out, e.Name())
			}
		}
	}
	return out
}

// LoadProfile is Load with the profile's recipes over the set's own: a recipe in
// profiles/NAME/ replaces the set's recipe of the same name or adds a stage. The default
// profile is the set as it is.
func LoadProfile(fsys fs.FS, profile string) (*Set, error) {
	if profile == "" || profile == DefaultProfile {
		return Load(fsys)
	}
	if !slices.Contains(Profiles(fsys), profile) {
		return nil, fmt.Errorf("profile %q: no such profile (profiles: %s)", profile, strings.Join(Profiles(fsys), ", "))
	}
	return load(fsys, profile)
}

// Target returns the target row for p.
func (s *Set) Target(p v1.Platform) (Target, bool) {
	t, ok := s.Targets[platform.String(platform.Normalize(p))]
	return t, ok
}

// Names lists the set's stages in name order.
func (s *Set) Names() []string {
	names := make([]string, 0, len(s.Recipes))
	for n := range s.Recipes {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

type rawSource struct {
	Name    string     `yaml:"name"`
	SHA256  string     `yaml:"sha256"`
	File    string     `yaml:"file"`
	URL     string     `yaml:"url"`
	Debian  *rawDebian `yaml:"debian"`
	License string     `yaml:"license"`
	Version string     `yaml:"version"`
}

type rawDebian struct {
	Package string `yaml:"package"`
	Version string `yaml:"version"`
	File    string `yaml:"file"`
}

type rawRecipe struct {
	Name        string            `yaml:"name"`
	Description string            `yaml:"description"`
	From        string            `yaml:"from"`
	BaseTarget  string            `yaml:"base-target"`
	RunsOn      string            `yaml:"runs-on"`
	Output      yaml.Node         `yaml:"output"`
	Platforms   []string          `yaml:"platforms"`
	Sources     []rawSource       `yaml:"sources"`
	Script      string            `yaml:"script"`
	Run         string            `yaml:"run"`
	Env         map[string]string `yaml:"env"`
	Network     bool              `yaml:"network"`
	Tools       []string          `yaml:"tools"`
	Files       []string          `yaml:"files"`
	Annotate    map[string]string `yaml:"annotate"`
	Cache       []string          `yaml:"cache"`
	Accelerate  bool              `yaml:"accelerate"`
	Distribute  bool              `yaml:"distribute"`
	Packages    []string          `yaml:"packages"`
}

var (
	stageNameRE     = regexp.MustCompile(`^[a-z0-9]+([._-][a-z0-9]+)*$`)
	sha256RE        = regexp.MustCompile(`^[0-9a-f]{64}$`)
	envKeyRE        = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)
	annotationKeyRE = regexp.MustCompile(`^[a-z0-9]+(\.[a-z0-9-]+)+$`)
)

// ValidName reports whether s may name a stage, an image of a set or a spin: lower-case
// letters and digits, with single . _ - between them (a tag's name part).
func ValidName(s string) bool { return stageNameRE.MatchString(s) }

// ValidEnvKey reports whether s may name an environment variable of a recipe or a spin.
func ValidEnvKey(s string) bool { return envKeyRE.MatchString(s) }

// Load reads and validates the recipe set at the root of fsys. It reports every problem it
// finds, each naming its file, line and field.
func Load(fsys fs.FS) (*Set, error) { return load(fsys, "") }

func load(fsys fs.FS, profile string) (*Set, error) {
	set := &Set{Recipes: map[string]*Recipe{}, Targets: map[string]Target{}, Profile: profile}
	var errs []error
	if err := loadTargets(fsys, set); err != nil {
		errs = append(errs, err)
	}
	dirs := []string{"."}
	if profile != "" {
		dir := path.Join(ProfilesDir, profile)
		if err := loadProfileFile(fsys, path.Join(dir, ProfileFile), set); err != nil {
			errs = append(errs, err)
		}
		dirs = append(dirs, dir)
	}
	for _, dir := range dirs {
		entries, err := fs.ReadDir(fsys, dir)
		if err != nil {
			return nil, fmt.Errorf("read recipe set: %w", err)
		}
		for _, e := range entries {
			name := e.Name()
			if e.IsDir() || name == TargetsFile || (dir != "." && name == ProfileFile) || !(strings.HasSuffix(name, ".yaml") || strings.HasSuffix(name, ".yml")) {
				continue
			}
			r, err := loadRecipe(fsys, path.Join(dir, name), set)
			if err != nil {
				errs = append(errs, err)
				continue
			}
			set.Recipes[r.Name] = r // a profile's recipe replaces the set's
		}
	}
	for _, name := range set.without {
		if _, ok := set.Recipes[name]; !ok && len(errs) == 0 {
			errs = append(errs, &Error{File: path.Join(ProfilesDir, profile, ProfileFile), Field: "without", Msg: fmt.Sprintf("no stage is named %q", name)})
		}
		delete(set.Recipes, name)
	}
	if len(errs) == 0 {
		errs = append(errs, set.checkGraph(fsys)...)
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	if len(set.Recipes) == 0 {
		return nil, errors.New("recipe set holds no recipes (*.yaml beside targets.yaml)")
	}
	return set, nil
}

// ParseFile parses one recipe, for tools and fuzzing; the checks that need the whole set
// (from, cycles, scripts, targets) are Load's.
func ParseFile(file string, data []byte) (*Recipe, error) {
	return parseRecipe(file, data, nil)
}

func loadTargets(fsys fs.FS, set *Set) error {
	data, err := readSetFile(fsys, TargetsFile)
	if errors.Is(err, fs.ErrNotExist) {
		return &Error{File: TargetsFile, Msg: "missing: a recipe set needs its table of target platforms"}
	}
	if err != nil {
		return &Error{File: TargetsFile, Msg: pathError(err).Error()}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return YAMLError(TargetsFile, err)
	}
	if err := checkExpansion(TargetsFile, &doc, len(data)); err != nil {
		return err
	}
	if len(doc.Content) == 0 || doc.Content[0].Kind != yaml.MappingNode {
		return &Error{File: TargetsFile, Line: 1, Msg: "want a mapping of platform to variables"}
	}
	m := doc.Content[0]
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		p, err := platform.Parse(k.Value)
		if err != nil {
			return &Error{File: TargetsFile, Line: k.Line, Field: k.Value, Err: err}
		}
		vars := map[string]string{}
		if err := v.Decode(&vars); err != nil {
			return &Error{File: TargetsFile, Line: v.Line, Field: k.Value, Msg: "want a mapping of variable names to strings"}
		}
		for _, req := range []string{"arch", "triple"} {
			if vars[req] == "" {
				return &Error{File: TargetsFile, Line: v.Line, Field: k.Value + "." + req, Msg: "missing"}
			}
		}
		set.Targets[platform.String(p)] = Target{Platform: p, Vars: vars}
	}
	return nil
}

// YAMLError turns a YAML parse error into an *Error naming file and line. (What does not fit
// the type a document decodes into is said before decoding, by checkShape, in the file's
// terms.)
func YAMLError(file string, err error) error {
	msg := err.Error()
	msg = strings.TrimPrefix(msg, "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "unmarshal errors:\n  "); ok {
		msg = rest
	}
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if n, after, ok := strings.Cut(rest, ": "); ok {
			if l, err := strconv.Atoi(n); err == nil {
				line, msg = l, after
			}
		}
	}
	return &Error{File: file, Line: line, Msg: msg, Err: err}
}

func loadProfileFile(fsys fs.FS, file string, set *Set) error {
	data, err := readSetFile(fsys, file)
	if errors.Is(err, fs.ErrNotExist) {
		return &Error{File: file, Msg: "missing: a profile directory needs its " + ProfileFile}
	}
	if err != nil {
		return &Error{File: file, Msg: pathError(err).Error()}
	}
	var raw rawProfile
	doc, err := DecodeStrict(file, data, &raw)
	if err != nil {
		return err
	}
	for _, k := range slices.Sorted(maps.Keys(raw.Images)) {
		if !stageNameRE.MatchString(k) || raw.Images[k] == "" {
			return &Error{File: file, Line: LineOf(doc, "images", k), Field: "images." + k, Msg: "want an image name mapped to a store tag or registry reference"}
		}
	}
	set.Images = raw.Images
	for i, name := range raw.Without {
		if !stageNameRE.MatchString(name) {
			return &Error{File: file, Line: LineOf(doc, "without", i), Field: fmt.Sprintf("without[%d]", i), Msg: fmt.Sprintf("%q is not a stage name", name)}
		}
	}
	set.without = raw.Without
	return nil
}

func loadRecipe(fsys fs.FS, file string, set *Set) (*Recipe, error) {
	data, err := readSetFile(fsys, file)
	if err != nil {
		return nil, &Error{File: file, Msg: pathError(err).Error()}
	}
	r, err := parseRecipe(file, data, set)
	if err != nil {
		return nil, err
	}
	return r, nil
}

func parseRecipe(file string, data []byte, set *Set) (*Recipe, error) {
	var raw rawRecipe
	doc, err := DecodeStrict(file, data, &raw)
	if err != nil {
		return nil, err
	}
	p := recipeParser{file: file, doc: doc}
	r := &Recipe{Name: raw.Name, Description: raw.Description, File: file, Env: raw.Env, Network: raw.Network, Tools: raw.Tools, doc: doc}
	if err := p.name(r); err != nil {
		return nil, err
	}
	if r.From, err = p.from(raw.From); err != nil {
		return nil, err
	}
	if r.RunsOn, err = p.runsOn(raw.RunsOn); err != nil {
		return nil, err
	}
	if err := p.baseTarget(r, raw.BaseTarget); err != nil {
		return nil, err
	}
	if r.From.Kind == FromHostPackages {
		return hostPackagesRecipe(r, raw, set, p.at, p.fail)
	}
	if len(raw.Packages) > 0 {
		return p.fail(p.at("packages", "packages"), "only a from: host-packages stage lists packages")
	}
	if r.Output, err = p.output(&raw.Output, r.RunsOn); err != nil {
		return nil, err
	}
	if r.Platforms, err = parsePlatforms(raw.Platforms, set, p.at); err != nil {
		return nil, err
	}
	if r.Sources, err = p.sources(raw.Sources); err != nil {
		return nil, err
	}
	if err := p.script(r, raw); err != nil {
		return nil, err
	}
	if err := p.options(r, raw); err != nil {
		return nil, err
	}
	return r, nil
}

// recipeParser reads the fields of one recipe file: each error names the file, the line of the
// field in it, and the field.
type recipeParser struct {
	file string
	doc  *yaml.Node
}

// at is the position of field, found in the document at path.
func (p recipeParser) at(field string, path ...any) *Error {
	return &Error{File: p.file, Line: LineOf(p.doc, path...), Field: field}
}

// fail is e with its message, as parseRecipe's error.
func (p recipeParser) fail(e *Error, format string, args ...any) (*Recipe, error) {
	e.Msg = fmt.Sprintf(format, args...)
	return nil, e
}

// errorf is e with its message.
func (p recipeParser) errorf(e *Error, format string, args ...any) error {
	e.Msg = fmt.Sprintf(format, args...)
	return e
}

// name checks the recipe's name: its file's, a valid stage name.
func (p recipeParser) name(r *Recipe) error {
	base := strings.TrimSuffix(strings.TrimSuffix(path.Base(p.file), ".yaml"), ".yml")
	if r.Name == "" {
		r.Name = base
	}
	if r.Name != base {
		return p.errorf(p.at("name", "name"), "%q differs from the file name %q", r.Name, base)
	}
	if !stageNameRE.MatchString(r.Name) {
		return p.errorf(p.at("name", "name"), "%q: use lower-case letters, digits and . _ - between them", r.Name)
	}
	return nil
}

// from reads what the stage starts from: a stage, packages:STAGE, image:REF or host-packages.
func (p recipeParser) from(raw string) (From, error) {
	switch f := strings.TrimSpace(raw); {
	case f == "":
		return From{}, p.errorf(p.at("from"), "missing: name a stage, image:REF or scratch")
	case f == "scratch":
		return From{}, p.errorf(p.at("from", "from"), "a stage runs its script inside its base, and scratch has no shell: start from an image")
	case f == string(FromHostPackages):
		return From{Kind: FromHostPackages}, nil
	case strings.HasPrefix(f, "image:"):
		if strings.TrimPrefix(f, "image:") == "" {
			return From{}, p.errorf(p.at("from", "from"), "image: needs a reference (a store tag or a registry reference)")
		}
		return From{Kind: FromImage, Ref: strings.TrimPrefix(f, "image:")}, nil
	case strings.HasPrefix(f, "packages:"):
		ref := strings.TrimPrefix(f, "packages:")
		if !stageNameRE.MatchString(ref) {
			return From{}, p.errorf(p.at("from", "from"), "packages:%s: want packages:STAGE, a stage of the set that makes packages", ref)
		}
		return From{Kind: FromStage, Ref: ref, Packages: true}, nil
	case !stageNameRE.MatchString(f):
		return From{}, p.errorf(p.at("from", "from"), "%q is not a stage name; an image is written image:REF", f)
	default:
		return From{Kind: FromStage, Ref: f}, nil
	}
}

func (p recipeParser) runsOn(raw string) (RunsOn, error) {
	switch RunsOn(raw) {
	case OnHost, OnTarget:
		return RunsOn(raw), nil
	case "":
		return "", p.errorf(p.at("runs-on"), "missing: host or target")
	default:
		return "", p.errorf(p.at("runs-on", "runs-on"), "%q: want host or target", raw)
	}
}

// baseTarget reads base-target: host, the base stage as built for the host itself.
func (p recipeParser) baseTarget(r *Recipe, raw string) error {
	switch raw {
	case "":
		return nil
	case "host":
		if r.From.Kind != FromStage || r.From.Packages {
			return p.errorf(p.at("base-target", "base-target"), "host: only a base that is a stage is built for a target (from: STAGE)")
		}
		if r.RunsOn != OnHost {
			return p.errorf(p.at("base-target", "base-target"), "host: a base built for the host runs on the host (runs-on: host)")
		}
		r.From.ForHost = true
		return nil
	default:
		return p.errorf(p.at("base-target", "base-target"), "%q: the one value is host (the base stage as built for the host itself)", raw)
	}
}

func (p recipeParser) output(n *yaml.Node, runsOn RunsOn) (Output, error) {
	out, err := parseOutput(n)
	if err != nil {
		e := p.at("output", "output")
		if n.Kind == 0 {
			e = p.at("output")
		}
		return Output{}, p.errorf(e, "%v", err)
	}
	if out.ForHost && runsOn != OnHost {
		return Output{}, p.errorf(p.at("output", "output"), "for: host: an image of host tools is made by a stage that runs on the host (runs-on: host)")
	}
	return out, nil
}

// sources reads the recipe's sources: each named once, by its sha256, with a plain file name
// of its own.
func (p recipeParser) sources(raw []rawSource) ([]Source, error) {
	var out []Source
	seenSource := map[string]bool{}
	seenFile := map[string]bool{}
	seenVar := map[string]string{}
	for i, s := range raw {
		src, err := p.source(i, s, seenSource, seenFile)
		if err != nil {
			return nil, err
		}
		if other, ok := seenVar[src.EnvName()]; ok {
			return nil, p.errorf(p.at(fmt.Sprintf("sources[%d].name", i), "sources", i, "name"),
				"%q and %q are one name in a script's environment (SERPENT_SOURCE_%s)", other, src.Name, src.EnvName())
		}
		seenVar[src.EnvName()] = src.Name
		out = append(out, src)
	}
	return out, nil
}

// source reads source i; seenSource and seenFile are the names and files of those before it.
func (p recipeParser) source(i int, s rawSource, seenSource, seenFile map[string]bool) (Source, error) {
	field := func(f string) string { return fmt.Sprintf("sources[%d].%s", i, f) }
	if s.Name == "" {
		return Source{}, p.errorf(p.at(field("name"), "sources", i), "missing")
	}
	if seenSource[s.Name] {
		return Source{}, p.errorf(p.at(field("name"), "sources", i, "name"), "%q is named twice", s.Name)
	}
	seenSource[s.Name] = true
	if s.SHA256 == "" {
		return Source{}, p.errorf(p.at(field("sha256"), "sources", i), "missing: every source is named by its sha256")
	}
	if !sha256RE.MatchString(s.SHA256) {
		return Source{}, p.errorf(p.at(field("sha256"), "sources", i, "sha256"), "%q is not 64 lower-case hex digits", s.SHA256)
	}
	if s.Version != "" && !sourceVersionRE.MatchString(s.Version) {
		return Source{}, p.errorf(p.at(field("version"), "sources", i, "version"), "%q is not a version (a digit first, then letters, digits and . + ~ _ -, at most 64)", s.Version)
	}
	src := Source{Name: s.Name, SHA256: s.SHA256, File: s.File, URL: s.URL, License: s.License, Version: s.Version}
	if s.Debian != nil {
		if s.Debian.Package == "" || s.Debian.Version == "" || s.Debian.File == "" {
			return Source{}, p.errorf(p.at(field("debian"), "sources", i, "debian"), "needs package, version and file")
		}
		// Each goes to apt-get or names what it wrote: an option (--help), a path out of
		// the download directory (../../etc) or a version with a shell's metacharacters is
		// refused here, before anything runs.
		switch {
		case !debianPackageRE.MatchString(s.Debian.Package):
			return Source{}, p.errorf(p.at(field("debian.package"), "sources", i, "debian", "package"), "%q is not a Debian package name", s.Debian.Package)
		case !debianVersionRE.MatchString(s.Debian.Version):
			return Source{}, p.errorf(p.at(field("debian.version"), "sources", i, "debian", "version"), "%q is not a Debian version", s.Debian.Version)
		case !plainFileName(s.Debian.File):
			return Source{}, p.errorf(p.at(field("debian.file"), "sources", i, "debian", "file"), "%q is not a plain file name", s.Debian.File)
		}
		src.Debian = &DebianSource{Package: s.Debian.Package, Version: s.Debian.Version, File: s.Debian.File}
	}
	if src.File == "" {
		switch {
		case src.Debian != nil:
			src.File = src.Debian.File
		case src.URL != "":
			src.File = path.Base(strings.SplitN(src.URL, "?", 2)[0])
		default:
			return Source{}, p.errorf(p.at(field("file"), "sources", i), "missing: a source without url or debian origin needs a file name (it comes from --source-mirror)")
		}
	}
	if !plainFileName(src.File) {
		return Source{}, p.errorf(p.at(field("file"), "sources", i), "%q is not a plain file name", src.File)
	}
	if seenFile[src.File] {
		return Source{}, p.errorf(p.at(field("file"), "sources", i), "%q is used by two sources", src.File)
	}
	seenFile[src.File] = true
	return src, nil
}

// script reads what runs: a script file or an inline run, with its environment.
func (p recipeParser) script(r *Recipe, raw rawRecipe) error {
	switch {
	case raw.Script != "" && raw.Run != "":
		return p.errorf(p.at("script", "script"), "give script or run, not both")
	case raw.Script == "" && raw.Run == "":
		return p.errorf(p.at("script"), "missing: a script file beside the recipe (script:) or an inline one (run:)")
	}
	r.Script, r.Run = raw.Script, raw.Run
	// Maps are checked in sorted order, so that of several bad keys the same one is named on
	// every run.
	for _, k := range slices.Sorted(maps.Keys(raw.Env)) {
		if !envKeyRE.MatchString(k) {
			return p.errorf(p.at("env", "env", k), "%q is not a variable name", k)
		}
	}
	return nil
}

// options reads what the stage's run is given besides its script: annotations it writes, cache
// directories, an accelerator, a compile farm, and the files of the set it is given.
func (p recipeParser) options(r *Recipe, raw rawRecipe) error {
	for _, k := range slices.Sorted(maps.Keys(raw.Annotate)) {
		file := raw.Annotate[k]
		if !annotationKeyRE.MatchString(k) {
			return p.errorf(p.at("annotate", "annotate", k), "%q is not an annotation key (reverse domain, like org.example.key)", k)
		}
		if !path.IsAbs(file) {
			return p.errorf(p.at("annotate", "annotate", k), "%q: want an absolute path in the stage's container", file)
		}
	}
	r.Annotate = raw.Annotate
	if len(raw.Cache) > maxCacheMounts {
		return p.errorf(p.at("cache", "cache"), "%d cache directories: at most %d", len(raw.Cache), maxCacheMounts)
	}
	for i, c := range raw.Cache {
		if err := checkCachePath(c, r.Cache); err != nil {
			return p.errorf(p.at(fmt.Sprintf("cache[%d]", i), "cache", i), "%q: %v", c, err)
		}
		r.Cache = append(r.Cache, c)
	}
	if raw.Accelerate && r.RunsOn != OnTarget {
		return p.errorf(p.at("accelerate", "accelerate"), "only a stage that runs on the target (runs-on: target) is run emulated, and so can be accelerated")
	}
	if raw.Distribute && raw.Network {
		return p.errorf(p.at("distribute", "distribute"), "a stage with the host's network (network: true) reaches a compile farm's helpers itself: distribute gives it a namespace of loopback ports instead")
	}
	r.Accelerate, r.Distribute = raw.Accelerate, raw.Distribute
	r.Files = map[string][]byte{}
	for i, f := range raw.Files {
		if !fs.ValidPath(f) {
			return p.errorf(p.at(fmt.Sprintf("files[%d]", i), "files", i), "%q: want a path relative to the recipe set, without ..", f)
		}
	}
	r.rawFiles = raw.Files
	return nil
}

// parsePlatforms reads a recipe's target platforms: at least one, each parsed and, in a set,
// with a row of the set's target table.
func parsePlatforms(raw []string, set *Set, at func(field string, path ...any) *Error) ([]v1.Platform, error) {
	fail := func(e *Error, format string, args ...any) ([]v1.Platform, error) {
		e.Msg = fmt.Sprintf(format, args...)
		return nil, e
	}
	if len(raw) == 0 {
		return fail(at("platforms"), "missing: list the target platforms the stage supports")
	}
	var out []v1.Platform
	for i, s := range raw {
		p, err := platform.Parse(s)
		if err != nil {
			return fail(at(fmt.Sprintf("platforms[%d]", i), "platforms", i), "%v", err)
		}
		if set != nil {
			if _, ok := set.Target(p); !ok {
				return fail(at(fmt.Sprintf("platforms[%d]", i), "platforms", i), "%s has no row in %s", platform.String(p), TargetsFile)
			}
		}
		out = append(out, p)
	}
	return out, nil
}

// debianPackageRE is a Debian package name (Debian Policy 5.6.1).
var debianPackageRE = regexp.MustCompile(`^[a-z0-9][a-z0-9+.-]+$`)

// sourceVersionRE is a source's upstream version as a script uses it (in a directory name, a
// file name): nothing a shell or a path would read as more than a word.
var sourceVersionRE = regexp.MustCompile(`^[0-9][A-Za-z0-9.+~_-]{0,63}$`)

// debianVersionRE is a Debian version (Debian Policy 5.6.12): an optional numeric epoch, an
// upstream version that starts with a digit, an optional revision.
var debianVersionRE = regexp.MustCompile(`^([0-9]+:)?[0-9][A-Za-z0-9.+~-]*$`)

// plainFileName reports whether name is one file name: no directory, not . or .., no byte
// that a shell or a terminal would read as something else.
func plainFileName(name string) bool {
	if name == "" || name == "." || name == ".." || len(name) > 255 {
		return false
	}
	for _, r := range name {
		if r == '/' || r == '\\' || r < ' ' || r == 0x7f {
			return false
		}
	}
	return true
}

// maxPackages bounds a host-packages stage's list.
const maxPackages = 500

// hostPackagesRecipe finishes a from: host-packages recipe: made on the host from packages,
// it has packages and platforms, and none of a script stage's fields.
func hostPackagesRecipe(r *Recipe, raw rawRecipe, set *Set, at func(field string, path ...any) *Error, fail func(*Error, string, ...any) (*Recipe, error)) (*Recipe, error) {
	if r.RunsOn != OnHost {
		return fail(at("runs-on", "runs-on"), "a from: host-packages stage is made on the host: runs-on: host")
	}
	for _, f := range []struct {
		name string
		set  bool
	}{
		{"output", raw.Output.Kind != 0}, {"sources", len(raw.Sources) > 0}, {"script", raw.Script != ""},
		{"run", raw.Run != ""}, {"env", len(raw.Env) > 0}, {"tools", len(raw.Tools) > 0}, {"files", len(raw.Files) > 0},
		{"annotate", len(raw.Annotate) > 0}, {"cache", len(raw.Cache) > 0}, {"network", raw.Network},
		{"accelerate", raw.Accelerate}, {"distribute", raw.Distribute},
	} {
		if f.set {
			return fail(at(f.name, f.name), "a from: host-packages stage has no %s: it is its packages", f.name)
		}
	}
	switch {
	case len(raw.Packages) == 0:
		return fail(at("packages"), "missing: list the packages the image holds")
	case len(raw.Packages) > maxPackages:
		return fail(at("packages", "packages"), "%d packages: at most %d", len(raw.Packages), maxPackages)
	}
	seen := map[string]bool{}
	for i, p := range raw.Packages {
		if !debianPackageRE.MatchString(p) {
			return fail(at(fmt.Sprintf("packages[%d]", i), "packages", i), "%q is not a package name", p)
		}
		if seen[p] {
			return fail(at(fmt.Sprintf("packages[%d]", i), "packages", i), "%q is listed twice", p)
		}
		seen[p] = true
	}
	r.Packages = raw.Packages
	r.Output = Output{Kind: Rootfs}
	var err error
	if r.Platforms, err = parsePlatforms(raw.Platforms, set, at); err != nil {
		return nil, err
	}
	r.Files = map[string][]byte{}
	return r, nil
}

// maxCacheMounts bounds a recipe's cache directories.
const maxCacheMounts = 8

// checkCachePath accepts an absolute, clean path for a cache directory that is not one the
// runner mounts itself, and not inside or around another of the recipe's caches.
func checkCachePath(c string, earlier []string) error {
	switch {
	case !path.IsAbs(c):
		return errors.New("want an absolute path in the stage's container")
	case path.Clean(c) != c:
		return fmt.Errorf("want it written plainly (%s)", path.Clean(c))
	case c == "/":
		return errors.New("the root cannot be a cache")
	}
	for _, reserved := range []string{"/proc", "/dev", "/sys", "/recipe", "/sources", "/tmp"} {
		if within(c, reserved) || within(reserved, c) {
			return fmt.Errorf("overlaps %s, which the runner mounts itself", reserved)
		}
	}
	for _, e := range earlier {
		if within(c, e) || within(e, c) {
			return fmt.Errorf("overlaps the cache %s", e)
		}
	}
	return nil
}

// within reports whether p is dir or below it.
func within(p, dir string) bool {
	return p == dir || strings.HasPrefix(p, dir+"/")
}

func parseOutput(n *yaml.Node) (Output, error) {
	switch n.Kind {
	case 0:
		return Output{}, errors.New("missing: layer, or rootfs: DIR")
	case yaml.ScalarNode:
		if n.Value == string(Layer) {
			return Output{Kind: Layer}, nil
		}
		return Output{}, fmt.Errorf("%q: want layer, or rootfs: DIR", n.Value)
	case yaml.MappingNode:
		out := Output{Kind: Rootfs}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i].Value, n.Content[i+1].Value
			if seen[k] {
				return Output{}, fmt.Errorf("%s: given twice", k)
			}
			seen[k] = true
			switch k {
			case string(Rootfs):
				dir := path.Clean(v)
				if !path.IsAbs(dir) || dir == "/" {
					return Output{}, fmt.Errorf("rootfs: %q: want an absolute directory other than /", v)
				}
				out.Dir = dir
			case "packages":
				dir := path.Clean(v)
				if !path.IsAbs(dir) || dir == "/" {
					return Output{}, fmt.Errorf("packages: %q: want an absolute directory other than /", v)
				}
				out.Packages = dir
			case "for":
				switch v {
				case "host":
					out.ForHost = true
				case "target":
				default:
					return Output{}, fmt.Errorf("for: %q: want target (the default: an image of the target's root) or host (an image of tools the host runs)", v)
				}
			default:
				return Output{}, fmt.Errorf("%q: want rootfs: DIR, and packages: DIR or for: target or host", k)
			}
		}
		switch {
		case out.Dir == "":
		case out.Packages != "" && (within(out.Packages, out.Dir) || within(out.Dir, out.Packages)):
			return Output{}, fmt.Errorf("packages: %s: want a directory apart from rootfs: %s (the packages are not files of the root)", out.Packages, out.Dir)
		case out.Packages != "" && out.ForHost:
			return Output{}, errors.New("packages: an image of host tools has no packages (for: host)")
		default:
			return out, nil
		}
	}
	return Output{}, errors.New("want layer, or rootfs: DIR (with for: host for an image of host tools)")
}

// LineOf finds the line of the node at path (mapping keys and sequence indexes) in doc, or of
// the deepest part of the path that exists (0 without a document). Recipe sets and spins name
// lines with it.
func LineOf(doc *yaml.Node, path ...any) int {
	if doc == nil {
		return 0
	}
	n := doc
	if n.Kind == yaml.DocumentNode && len(n.Content) > 0 {
		n = n.Content[0]
	}
	line := n.Line
	for _, p := range path {
		switch key := p.(type) {
		case string:
			if n.Kind != yaml.MappingNode {
				return line
			}
			found := false
			for i := 0; i+1 < len(n.Content); i += 2 {
				if n.Content[i].Value == key {
					line, n, found = n.Content[i].Line, n.Content[i+1], true
					break
				}
			}
			if !found {
				return line
			}
		case int:
			if n.Kind != yaml.SequenceNode || key >= len(n.Content) {
				return line
			}
			n = n.Content[key]
			line = n.Line
		}
	}
	return line
}

// checkGraph checks what needs the whole set: every from names a stage, no cycles, scripts and
// files exist (and are read into the recipes).
func (s *Set) checkGraph(fsys fs.FS) []error {
	var errs []error
	for _, name := range s.Names() {
		r := s.Recipes[name]
		if r.From.Kind == FromStage {
			base, ok := s.Recipes[r.From.Ref]
			switch {
			case !ok:
				errs = append(errs, &Error{File: r.File, Line: LineOf(r.doc, "from"), Field: "from",
					Msg: fmt.Sprintf("no stage is named %q (stages: %s; an image is written image:REF)", r.From.Ref, strings.Join(s.Names(), ", "))})
			case r.From.Packages && base.Output.Packages == "":
				errs = append(errs, &Error{File: r.File, Line: LineOf(r.doc, "from"), Field: "from",
					Msg: fmt.Sprintf("packages:%s: stage %s makes no packages (its output names no packages: DIR)", base.Name, base.Name)})
			}
		}
		if r.Script != "" {
			p := path.Join(path.Dir(r.File), r.Script)
			b, err := readSetFile(fsys, p)
			switch {
			case errors.Is(err, fs.ErrNotExist):
				errs = append(errs, &Error{File: r.File, Line: LineOf(r.doc, "script"), Field: "script", Msg: fmt.Sprintf("%s does not exist beside the recipe", r.Script)})
			case err != nil:
				errs = append(errs, &Error{File: r.File, Line: LineOf(r.doc, "script"), Field: "script", Msg: fmt.Sprintf("%s: %v", r.Script, pathError(err))})
			default:
				r.Files[p] = b
			}
		}
		for i, f := range r.rawFiles {
			if err := readTree(fsys, f, r.Files); err != nil {
				errs = append(errs, &Error{File: r.File, Line: LineOf(r.doc, "files", i), Field: fmt.Sprintf("files[%d]", i), Err: err})
			}
		}
	}
	if len(errs) > 0 {
		return errs
	}
	// Cycles: follow from links; a chain longer than the set has stages loops.
	for _, name := range s.Names() {
		seen := []string{name}
		for r := s.Recipes[name]; r.From.Kind == FromStage; r = s.Recipes[r.From.Ref] {
			if i := indexOf(seen, r.From.Ref); i >= 0 {
				cycle := append(seen[i:], r.From.Ref)
				first := s.Recipes[name]
				return []error{&Error{File: first.File, Line: LineOf(first.doc, "from"), Field: "from", Msg: "cycle: " + strings.Join(cycle, " → ")}}
			}
			seen = append(seen, r.From.Ref)
		}
	}
	return nil
}

func indexOf(list []string, s string) int {
	for i, x := range list {
		if x == s {
			return i
		}
	}
	return -1
}

// What a recipe set may hold: it is read into memory whole (its files are part of every
// recipe's digest), so each file and each recipe's files: trees are bounded.
const (
	maxSetFileBytes   = 16 << 20 // one recipe, script, patch or file
	maxTreeFiles      = 4096     // the files: entries of one recipe, all trees together
	maxTreeTotalBytes = 64 << 20
)

// readSetFile reads the recipe set's file name: a regular file (a FIFO would hang the load, a
// device would never end) of at most maxSetFileBytes.
func readSetFile(fsys fs.FS, name string) ([]byte, error) {
	fi, err := fs.Stat(fsys, name)
	if err != nil {
		return nil, err
	}
	if !fi.Mode().IsRegular() {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("a %s, not a regular file", filekind.Of(fi.Mode()))}
	}
	if fi.Size() > maxSetFileBytes {
		return nil, &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("%d bytes, more than the %d a recipe set's file may have", fi.Size(), maxSetFileBytes)}
	}
	f, err := fsys.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSetFileBytes+1))
	if err == nil && len(b) > maxSetFileBytes {
		err = &fs.PathError{Op: "read", Path: name, Err: fmt.Errorf("more than the %d bytes a recipe set's file may have", maxSetFileBytes)}
	}
	return b, err
}

func readTree(fsys fs.FS, root string, into map[string][]byte) error {
	total := 0 // into holds the recipe's script and earlier trees already
	for _, b := range into {
		total += len(b)
	}
	return fs.WalkDir(fsys, root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("%s: %w", root, pathError(err))
		}
		if d.IsDir() {
			return nil
		}
		b, err := readSetFile(fsys, p)
		if err != nil {
			return fmt.Errorf("%s: %w", p, pathError(err))
		}
		into[p] = b
		total += len(b)
		if len(into) > maxTreeFiles || total > maxTreeTotalBytes {
			return fmt.Errorf("%s: more than the %d files or %d bytes a recipe's files may have", root, maxTreeFiles, maxTreeTotalBytes)
		}
		return nil
	})
}

// pathError says what went wrong reading a file of the set without the path again, a symlink
// that leads out of it in the set's terms.
func pathError(err error) error {
	if LeadsOutOfRoot(err) {
		return errors.New("a symlink that leads out of the recipe set: refused")
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

// LeadsOutOfRoot reports whether err is os.Root's refusal of a path that leads out of the
// root (through a symlink or ..): how a definition read as a root meets a symlink to a host
// file. os.Root says it with an unexported error ("path escapes from parent"), so its text is
// what there is to match.
func LeadsOutOfRoot(err error) bool {
	var pe *fs.PathError
	return errors.As(err, &pe) && strings.Contains(pe.Err.Error(), "path escapes from parent")
}
