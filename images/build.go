package images

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/containerd/log"
	securejoin "github.com/cyphar/filepath-securejoin"
	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	ocispec "github.com/opencontainers/image-spec/specs-go/v1"
	"github.com/serpent-os/serpent-oci/builder"
	"github.com/serpent-os/serpent-oci/builder/baseimage"
	"github.com/serpent-os/serpent-oci/builder/cachekey"
	"github.com/serpent-os/serpent-oci/oci/image"
	"github.com/serpent-os/serpent-oci/oci/layer"
	"github.com/serpent-os/serpent-oci/oci/packages"
	"github.com/serpent-os/serpent-oci/oci/platform"
	"github.com/serpent-os/serpent-oci/oci/registry"
	"github.com/serpent-os/serpent-oci/oci/store"
	"github.com/serpent-os/serpent-oci/stages"
)

// FormatVersion is part of every step key: bump it when the same spin would give other bytes.
const FormatVersion = "serpent-oci/spin/1"

// Annotations on a spin image, beside the OCI base-image ones.
const (
	AnnotationSpin  = "os.serpent.oci.spin"       // the spin's name
	AnnotationSteps = "os.serpent.oci.spin.steps" // JSON: each step's key and layer digest
)

// Options is a spin build.
type Options struct {
	Store     *store.Store
	Runner    builder.Executor
	Registry  *registry.Client // for bases in a registry (nil: store tags only)
	Platforms []v1.Platform    // default: the spin's, else the host's
	Tag       string           // store tag of the result (default: the spin's name)
	Pull      bool             // resolve the base reference afresh, not the digest recorded last time
	Epoch     time.Time        // SOURCE_DATE_EPOCH (default: the layer writer's default)
	Events    func(Event)      // told of every step as it ends
}

// Event is a step done for a platform.
type Event struct {
	Platform v1.Platform
	Step     *Step
	Reused   bool
	Took     time.Duration
}

// Result is the image made for one platform.
type Result struct {
	Platform   v1.Platform
	Tag        store.Ref
	Descriptor v1.Descriptor
	BaseName   string
	BaseDigest v1.Hash
	Reused     int // steps whose layer came from the last build
	Ran        int // steps that ran (a container, or a copy)
}

// stepRecord is what the image remembers of a step, to reuse it next time.
type stepRecord struct {
	Key   string `json:"key"`
	Layer string `json:"layer,omitempty"`
}

type base struct {
	img    v1.Image
	digest v1.Hash
	name   string
}

// Build builds the spin for each platform and tags each result TAG@PLATFORM. Every base is
// resolved before any step runs: a base that does not exist, or lacks a platform, stops the
// build with an error naming the definition's from line.
func Build(ctx context.Context, s *Spin, opts Options) ([]Result, error) {
	if opts.Tag == "" {
		opts.Tag = s.Name
	}
	opts.Epoch = layer.Epoch(opts.Epoch)
	plats := opts.Platforms
	if len(plats) == 0 {
		plats = s.Platforms
	}
	plats = platform.OrHost(plats)
	// The layers of steps stay untagged until the image is: keep gc out until then.
	release, err := opts.Store.Hold(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	bases := make([]base, len(plats))
	prevs := make([]v1.Image, len(plats))
	for i, p := range plats {
		tag := store.Ref{Name: opts.Tag}.WithPlatform(&p)
		if img, _, err := opts.Store.Image(tag); err == nil {
			prevs[i] = img
		} else if !errors.Is(err, store.ErrNotFound) {
			return nil, err
		}
		b, err := resolveBase(ctx, s, opts, p, prevs[i])
		if err != nil {
			return nil, &stages.Error{File: s.File, Line: s.FromLine, Field: "from", Err: err}
		}
		bases[i] = b
	}
	var out []Result
	for i, p := range plats {
		r, err := buildPlatform(ctx, s, opts, p, bases[i], prevs[i])
		if err != nil {
			return out, fmt.Errorf("spin %s for %s: %w", s.Name, platform.String(p), err)
		}
		out = append(out, r)
	}
	return out, nil
}

// resolveBase finds the base image for p: the digest the last build recorded (unless
// opts.Pull, or the definition names another base now), else a store tag, else the registry.
func resolveBase(ctx context.Context, s *Spin, opts Options, p v1.Platform, prev v1.Image) (base, error) {
	if prev != nil && !opts.Pull {
		if m, err := prev.Manifest(); err == nil && m.Annotations[ocispec.AnnotationBaseImageName] == s.From {
			if h, err := v1.NewHash(m.Annotations[ocispec.AnnotationBaseImageDigest]); err == nil {
				if img, err := baseimage.ByDigest(ctx, opts.Store, opts.Registry, s.From, h, p); err == nil {
					return base{img, h, s.From}, nil
				}
				log.G(ctx).WithFields(log.Fields{"spin": s.File, "base": h.String(), "platform": platform.String(p), "from": s.From}).
					Warn("the base recorded last time is gone: resolving from: again")
			}
		}
	}
	b, err := baseimage.Find(ctx, opts.Store, opts.Registry, s.From, p)
	if err != nil {
		return base{}, fmt.Errorf("%s for %s: %w", s.From, platform.String(p), err)
	}
	return base{b.Image, b.Digest, s.From}, nil
}

func buildPlatform(ctx context.Context, s *Spin, opts Options, p v1.Platform, b base, prev v1.Image) (Result, error) {
	res := Result{Platform: p, Tag: store.Ref{Name: opts.Tag}.WithPlatform(&p), BaseName: b.name, BaseDigest: b.digest}
	var prevSteps []stepRecord
	if prev != nil {
		if m, err := prev.Manifest(); err == nil {
			_ = json.Unmarshal([]byte(m.Annotations[AnnotationSteps]), &prevSteps)
		}
	}
	key := cachekey.Of(struct {
		Format, Base, Platform string
		Epoch                  int64
	}{FormatVersion, b.digest.String(), platform.String(p), opts.Epoch.Unix()})
	cur := image.WithoutAnnotations(b.img)
	installed := installedIn(b.img) // the base root's packages, and those steps stack
	var records []stepRecord
	reusing := true
	for i := range s.Steps {
		st := &s.Steps[i]
		start := time.Now()
		meaning := meaningOf(st)
		var pkgs []v1.Image
		if st.Kind == Packages {
			// Resolved first: the step's key is the packages it stacks, so a repository
			// that moves re-keys it and what follows.
			var added []packages.Installed
			var err error
			if pkgs, added, err = stepPackages(ctx, opts, st, p, installed); err != nil {
				return res, fmt.Errorf("step %d (%s:%d, %s): %w", i+1, s.File, st.Line, st.Kind, err)
			}
			for _, a := range added {
				meaning.Packages = append(meaning.Packages, a.Digest)
			}
			installed = append(installed, added...)
		}
		key = cachekey.Of(struct {
			Prev string
			Step stepMeaning
		}{key, meaning})
		history := v1.History{
			Created:   v1.Time{Time: opts.Epoch},
			CreatedBy: fmt.Sprintf("serpent-oci spin %s, step %d: %s", s.Name, i+1, st.Describe()),
		}
		rec := stepRecord{Key: key}
		reused := false
		var err error
		switch {
		case st.Kind == Packages:
			// Each package's own layer blob, as an assembled root has it: nothing runs.
			cur, err = packages.Assemble(cur, pkgs, p, opts.Epoch)
		case !st.MakesLayer():
			cur, err = applyConfig(cur, st, history)
		case reusing && i < len(prevSteps) && prevSteps[i].Key == key && prevSteps[i].Layer != "":
			cur, err = reuseLayer(cur, prev, prevSteps[i].Layer, history)
			rec.Layer, reused = prevSteps[i].Layer, err == nil
		default:
			reusing = false
			var l v1.Hash
			cur, l, err = runStep(ctx, s, opts, st, p, cur, history)
			rec.Layer = l.String()
		}
		if err != nil {
			return res, fmt.Errorf("step %d (%s:%d, %s): %w", i+1, s.File, st.Line, st.Kind, err)
		}
		if st.MakesLayer() {
			if reused {
				res.Reused++
			} else {
				res.Ran++
			}
		}
		records = append(records, rec)
		if opts.Events != nil {
			opts.Events(Event{Platform: p, Step: st, Reused: reused, Took: time.Since(start)})
		}
	}
	cfg, err := cur.ConfigFile()
	if err != nil {
		return res, err
	}
	cfg = cfg.DeepCopy()
	cfg.Created = v1.Time{Time: opts.Epoch}
	if cur, err = mutate.ConfigFile(cur, cfg); err != nil {
		return res, err
	}
	steps, _ := json.Marshal(records)
	annotations := map[string]string{
		ocispec.AnnotationBaseImageName:   b.name,
		ocispec.AnnotationBaseImageDigest: b.digest.String(),
		AnnotationSpin:                    s.Name,
		AnnotationSteps:                   string(steps),
	}
	if len(installed) > 0 {
		// What the root holds of packages, base's and steps' alike: a spin on this one
		// stacks none of them again.
		b, err := json.Marshal(installed)
		if err != nil {
			return res, err
		}
		annotations[packages.AnnotationPackages] = string(b)
	}
	cur = mutate.Annotations(cur, annotations).(v1.Image) // merged: a packages step's own list is replaced
	d, err := opts.Store.WriteImage(ctx, cur, res.Tag)
	if err != nil {
		return res, err
	}
	res.Descriptor = d
	return res, nil
}

// stepMeaning is what of a step can change its result.
type stepMeaning struct {
	Kind     Kind
	Src      string `json:",omitempty"` // the copied tree: paths, modes, content digests
	Dst      string `json:",omitempty"`
	Mode     string `json:",omitempty"`
	Owner    string `json:",omitempty"`
	Script   string `json:",omitempty"`
	Network  bool   `json:",omitempty"`
	Vars     map[string]string
	Dir      string   `json:",omitempty"`
	Args     []string `json:",omitempty"`
	ArgsNull bool     `json:",omitempty"`
	Packages []string `json:",omitempty"` // the package images a packages step stacks
}

func meaningOf(st *Step) stepMeaning {
	m := stepMeaning{Kind: st.Kind, Src: st.srcDigests, Dst: st.Dst, Script: st.Script, Network: st.Network, Vars: st.Vars, Dir: st.Dir, Args: st.Args}
	if st.Kind == Copy {
		m.Owner = fmt.Sprintf("%d:%d", st.UID, st.GID)
		if st.Mode != nil {
			m.Mode = fmt.Sprintf("%04o", *st.Mode)
		}
	}
	m.ArgsNull = (st.Kind == Entrypoint || st.Kind == Cmd) && st.Args == nil
	return m
}

// applyConfig makes a config step's change, with its history entry (an empty layer).
func applyConfig(img v1.Image, st *Step, h v1.History) (v1.Image, error) {
	cfg, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cfg = cfg.DeepCopy()
	c := &cfg.Config
	switch st.Kind {
	case Env:
		for _, kv := range sortedPairs(st.Vars) {
			k, _, _ := strings.Cut(kv, "=")
			c.Env = setEnv(c.Env, k, kv)
		}
	case Labels:
		if c.Labels == nil {
			c.Labels = map[string]string{}
		}
		for k, v := range st.Vars {
			c.Labels[k] = v
		}
	case Workdir:
		c.WorkingDir = st.Dir
	case Entrypoint:
		c.Entrypoint = st.Args
	case Cmd:
		c.Cmd = st.Args
	}
	h.EmptyLayer = true
	cfg.History = append(cfg.History, h)
	return mutate.ConfigFile(img, cfg)
}

func setEnv(env []string, key, kv string) []string {
	for i, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == key {
			env[i] = kv
			return env
		}
	}
	return append(env, kv)
}

// reuseLayer appends the layer digest of the last build's image to img.
func reuseLayer(img, prev v1.Image, digest string, h v1.History) (v1.Image, error) {
	d, err := v1.NewHash(digest)
	if err != nil {
		return nil, err
	}
	l, err := prev.LayerByDigest(d)
	if err != nil {
		return nil, err
	}
	mt, err := l.MediaType()
	if err != nil {
		return nil, err
	}
	return mutate.Append(img, mutate.Addendum{Layer: l, MediaType: mt, History: h})
}

// runStep runs a run step in a container, or a copy step on the host, over img, and returns
// img with the step's layer.
func runStep(ctx context.Context, s *Spin, opts Options, st *Step, p v1.Platform, img v1.Image, h v1.History) (v1.Image, v1.Hash, error) {
	ro := builder.RunOptions{
		Name: fmt.Sprintf("%s-%d", s.Name, st.Index+1), Base: img, Platform: p,
		Output: builder.Output{Capture: builder.CaptureLayer, Layer: layer.WriteOptions{SourceDateEpoch: opts.Epoch}},
	}
	switch st.Kind {
	case Run:
		ro.Process = builder.Process{
			Args: []string{"/bin/sh", "-e", "-c", st.Script}, Network: st.Network,
			Env: []string{"SOURCE_DATE_EPOCH=" + fmt.Sprint(opts.Epoch.Unix())},
		}
	case Copy:
		ro.Prepare = func(ctx context.Context, root string) error { return copyInto(root, s.Dir, st) }
	}
	// Untagged: the spin's image is tagged once, after its last step.
	r, err := builder.RunAndCommit(ctx, opts.Runner, ro, builder.Commit{CreatedBy: h.CreatedBy})
	if err != nil {
		return nil, v1.Hash{}, err
	}
	d, err := r.Layer.Digest()
	return r.Image, d, err
}

// copyInto copies st.Src (a file, or a directory's contents, read from the spin's directory
// dir as a root: nothing it names may lead out of dir) to st.Dst under root, with the step's
// owner and, for files, its mode. Paths resolve inside root: a symlink in the image cannot
// lead the copy out of it. A file copied to an existing directory, or to a path ending in
// "/", lands in it under its own name.
func copyInto(root, dir string, st *Step) error {
	dst := st.Dst
	return walkContext(dir, st.Src, func(fsys fs.FS, path, rel string, info fs.FileInfo) error {
		if rel == "." && !info.IsDir() {
			if strings.HasSuffix(dst, "/") {
				dst += filepath.Base(st.Src)
			} else if full, err := securejoin.SecureJoin(root, dst); err == nil {
				if dfi, err := os.Stat(full); err == nil && dfi.IsDir() {
					dst = filepath.Join(dst, filepath.Base(st.Src))
				}
			}
		}
		target, err := securejoin.SecureJoin(root, filepath.Join(dst, rel))
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Dir(target), 0o755); err != nil {
			return err
		}
		switch {
		case info.IsDir():
			if err := os.MkdirAll(target, info.Mode().Perm()); err != nil {
				return err
			}
		case info.Mode()&fs.ModeSymlink != 0:
			link, err := fs.ReadLink(fsys, path)
			if err != nil {
				return err
			}
			_ = os.RemoveAll(target)
			if err := os.Symlink(link, target); err != nil {
				return err
			}
		default:
			mode := info.Mode().Perm()
			if st.Mode != nil {
				mode = *st.Mode
			}
			if err := copyFile(fsys, path, target, mode); err != nil {
				return err
			}
		}
		return os.Lchown(target, st.UID, st.GID)
	})
}

func copyFile(fsys fs.FS, src, dst string, mode os.FileMode) error {
	in, err := fsys.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if fi, err := os.Lstat(dst); err == nil && !fi.IsDir() {
		if err := os.Remove(dst); err != nil {
			return err
		}
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_EXCL|os.O_WRONLY, mode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return os.Chmod(dst, mode) // the umask does not apply
}

// Push sends the results, one per platform, to ref as a build's images go
// (registry.Client.PushStored). The base's layers are mounted from the base's repository
// when it is on the same registry.
func Push(ctx context.Context, opts Options, results []Result, ref name.Reference) (registry.Pushed, error) {
	var descs []v1.Descriptor
	var names []string
	var po registry.PushOptions
	for _, r := range results {
		descs, names = append(descs, r.Descriptor), append(names, r.Tag.String())
		if registry.LooksRemote(r.BaseName) {
			if base, err := opts.Registry.ParseReference(r.BaseName); err == nil {
				po.MountFrom = append(po.MountFrom, base.Context())
			}
		}
	}
	return opts.Registry.PushStored(ctx, opts.Store, descs, names, ref, po)
}
