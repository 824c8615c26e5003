package build

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"strings"
	"time"

	"github.com/containerd/log"
	"github.com/serpent-os/serpent-oci/oci/store"
)

// timingsDir is where the store records how long each stage tag's last builds took (below
// .serpent/): one file per tag, read for the estimates of plan and of a build's progress.
const timingsDir = "timings"

// maxTimedBuilds is how many builds of one tag its record keeps (the newest).
const maxTimedBuilds = 8

// timingRecord is a tag's last builds, newest first.
type timingRecord struct {
	Tag    string       `json:"tag"`
	Builds []timedBuild `json:"builds"`
}

type timedBuild struct {
	Key         string  `json:"key"`
	Seconds     float64 `json:"seconds"`
	Accelerated bool    `json:"accelerated,omitempty"`
}

// Estimate is how long building a step should take, from the store's record of its tag.
type Estimate struct {
	Took    time.Duration // how long the recorded build took
	SameKey bool          // the recorded build had this step's key: the same inputs
}

// String is the estimate as plan prints it: "1h27m" or, for a build of other inputs, "~1h27m"
// (to the minute from ten minutes, the second under that, a tenth of one under ten seconds).
func (e Estimate) String() string {
	d := e.Took.Round(time.Second).String()
	if e.Took < 10*time.Second {
		d = e.Took.Round(100 * time.Millisecond).String()
	}
	if e.Took >= 10*time.Minute {
		d = strings.TrimSuffix(e.Took.Round(time.Minute).String(), "0s")
	}
	if e.SameKey {
		return d
	}
	return "~" + d
}

// EstimateOf is how long building s should take: what the store's last build of the same key
// took, else its last build of the tag that ran the same way (accelerated or not: an
// accelerated build takes a fraction of an emulated one). ok is false when the store has no
// such build (a bad record is logged and read as none: it only informs).
func EstimateOf(ctx context.Context, st *store.Store, s *Step) (Estimate, bool) {
	rec, ok := readTimings(ctx, st, s.Tag)
	if !ok {
		return Estimate{}, false
	}
	var found *timedBuild
	for i, b := range rec.Builds {
		if b.Accelerated != s.Accelerated() {
			continue
		}
		if s.Key != "" && b.Key == s.Key {
			return Estimate{Took: seconds(b.Seconds), SameKey: true}, true
		}
		if found == nil {
			found = &rec.Builds[i]
		}
	}
	if found == nil {
		return Estimate{}, false
	}
	return Estimate{Took: seconds(found.Seconds)}, true
}

func seconds(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }

func readTimings(ctx context.Context, st *store.Store, tag store.Ref) (timingRecord, bool) {
	var rec timingRecord
	err := readRecord(st, timingsDir, tag, &rec)
	if errors.Is(err, fs.ErrNotExist) {
		return timingRecord{}, false
	}
	if err == nil && rec.Tag != tag.String() {
		err = fmt.Errorf("it is for %q", rec.Tag)
	}
	if err == nil && len(rec.Builds) > maxTimedBuilds {
		err = fmt.Errorf("%d builds, more than %d", len(rec.Builds), maxTimedBuilds)
	}
	for _, b := range rec.Builds {
		if err == nil && !(b.Seconds >= 0 && b.Seconds < 1e9) {
			err = fmt.Errorf("a build of %v seconds", b.Seconds)
		}
	}
	if err != nil {
		log.G(ctx).WithError(err).WithFields(log.Fields{"tag": tag.String(), "file": recordPath(st, timingsDir, tag)}).Warn("build timings record is bad: ignored")
		return timingRecord{}, false
	}
	return rec, true
}

// recordBuildTime adds a build of s that took took to its tag's record: first, replacing an
// earlier build of the same key run the same way, and the oldest past maxTimedBuilds dropped.
func recordBuildTime(ctx context.Context, st *store.Store, s *Step, took time.Duration) error {
	rec, _ := readTimings(ctx, st, s.Tag)
	b := timedBuild{Key: s.Key, Seconds: took.Seconds(), Accelerated: s.Accelerated()}
	builds := []timedBuild{b}
	for _, o := range rec.Builds {
		if (o.Key != b.Key || o.Accelerated != b.Accelerated) && len(builds) < maxTimedBuilds {
			builds = append(builds, o)
		}
	}
	return writeRecord(st, timingsDir, s.Tag, timingRecord{Tag: s.Tag.String(), Builds: builds})
}
