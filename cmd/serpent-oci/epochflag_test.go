package main

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/spf13/pflag"
)

// TestEpochFlag: --source-date-epoch is checked when parsed; without it $SOURCE_DATE_EPOCH is
// taken, and a bad one is a usage error naming the variable; without either, the zero time (the
// layer writer's fixed default).
func TestEpochFlag(t *testing.T) {
	for _, tc := range []struct {
		name     string
		args     []string
		env      string
		want     time.Time
		parseErr string
		timeErr  string
	}{
		{"neither", nil, "", time.Time{}, "", ""},
		{"the flag", []string{"--source-date-epoch", "1597536000"}, "", time.Date(2020, 8, 16, 0, 0, 0, 0, time.UTC), "", ""},
		{"the flag over the variable", []string{"--source-date-epoch", "0"}, "86400", time.Unix(0, 0).UTC(), "", ""},
		{"the variable", nil, "86400", time.Unix(86400, 0).UTC(), "", ""},
		{"a bad flag", []string{"--source-date-epoch", "1.5"}, "", time.Time{}, `invalid argument "1.5" for "--source-date-epoch" flag: want a Unix time in seconds, such as 1597536000`, ""},
		{"a negative flag", []string{"--source-date-epoch=-1"}, "", time.Time{}, `invalid argument "-1"`, ""},
		{"a bad variable", nil, "soon", time.Time{}, "", `$SOURCE_DATE_EPOCH="soon": want a Unix time in seconds`},
		{"a bad variable under a good flag", []string{"--source-date-epoch", "7"}, "soon", time.Unix(7, 0).UTC(), "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Setenv(epochVar, tc.env)
			fs := pflag.NewFlagSet("test", pflag.ContinueOnError)
			fs.SetOutput(new(strings.Builder))
			var e epochFlag
			addEpochFlag(fs, &e, "the time")
			err := fs.Parse(tc.args)
			if tc.parseErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.parseErr) {
					t.Fatalf("parse: %v, want %q", err, tc.parseErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := e.Time()
			if tc.timeErr != "" {
				var u usageError
				if err == nil || !strings.Contains(err.Error(), tc.timeErr) || !errors.As(err, &u) {
					t.Fatalf("time: %v, want a usage error saying %q", err, tc.timeErr)
				}
				return
			}
			if err != nil || !got.Equal(tc.want) {
				t.Errorf("time: %v %v, want %v", got, err, tc.want)
			}
		})
	}
}
