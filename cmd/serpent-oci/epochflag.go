package main

import (
	"fmt"
	"os"
	"strconv"
	"time"

	"github.com/spf13/pflag"
)

// epochVar is the environment variable every reproducible-build tool reads for the time of
// what it makes (reproducible-builds.org's SOURCE_DATE_EPOCH).
const epochVar = "SOURCE_DATE_EPOCH"

// epochFlag is --source-date-epoch, the one definition every command that stamps a time shares:
// a Unix time in seconds, checked when the flag is parsed (a bad one is a usage error naming
// the flag), else $SOURCE_DATE_EPOCH, checked when it is read (its error names the variable),
// else the zero time, which the layer writer takes as its fixed default (2020-08-16).
type epochFlag struct {
	t   time.Time
	set bool
}

// addEpochFlag defines --source-date-epoch on fs; what describes what the time is for.
func addEpochFlag(fs *pflag.FlagSet, e *epochFlag, what string) {
	fs.Var(e, "source-date-epoch", what+", a Unix time in seconds (default $"+epochVar+", else 2020-08-16)")
}

func (e *epochFlag) String() string {
	if !e.set {
		return ""
	}
	return strconv.FormatInt(e.t.Unix(), 10)
}

func (e *epochFlag) Set(s string) error {
	t, err := parseUnixTime(s)
	if err != nil {
		return err
	}
	e.t, e.set = t, true
	return nil
}

func (e *epochFlag) Type() string { return "seconds" }

// Time is the flag's time, else $SOURCE_DATE_EPOCH's, else the zero time.
func (e *epochFlag) Time() (time.Time, error) {
	if e.set {
		return e.t, nil
	}
	s := os.Getenv(epochVar)
	if s == "" {
		return time.Time{}, nil
	}
	t, err := parseUnixTime(s)
	if err != nil {
		return time.Time{}, usagef("$%s=%q: %v", epochVar, s, err)
	}
	return t, nil
}

func parseUnixTime(s string) (time.Time, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 {
		return time.Time{}, fmt.Errorf("want a Unix time in seconds, such as %d", time.Date(2020, 8, 16, 0, 0, 0, 0, time.UTC).Unix())
	}
	return time.Unix(n, 0).UTC(), nil
}
