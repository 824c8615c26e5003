// Command serpent-oci builds an operating-system bootstrap as OCI images. This package is the
// command line only: it parses flags, calls the packages under oci/ (and later builder/), and
// prints. Exit codes: 0 success, 1 build or runtime failure, 2 usage error.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/containerd/log"
	"github.com/sirupsen/logrus"
	"github.com/spf13/pflag"

	"github.com/serpent-os/serpent-oci/oci/suggest"
)

func main() {
	// SIGINT and SIGTERM cancel ctx: every command stops at its next check, removes what it
	// had half written and exits 1 ("interrupted"); a write whose tag is already set is done
	// and exits 0. This is the first thing main does, before any file is opened, so a signal
	// that arrives earlier (during the Go runtime's start) ends a process that has written
	// nothing, and the default action is as harmless as the handler would be.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// usageError marks an error as the user's: bad flags or arguments (exit code 2).
// usageError is a command line that cannot be run; command, when known, is the subcommand
// whose help to point to, and code the exit status (default 2).
type usageError struct {
	err     error
	command string
	code    int
}

func (e usageError) Error() string { return e.err.Error() }
func (e usageError) Unwrap() error { return e.err }

func usagef(format string, args ...any) error {
	return usageError{err: fmt.Errorf(format, args...)}
}

// env is what every command gets: where to print and the global options.
type env struct {
	stdin          io.Reader
	stdout, stderr io.Writer
	storeDir       string
	jsonLog        bool // --log-format json: the final error is a JSON line too
}

// command is one subcommand: its help text and how to run it.
type command struct {
	name    string
	args    string // the positional arguments, as the synopsis shows them
	summary string
	long    string
	example string
	flags   func(fs *pflag.FlagSet)
	run     func(ctx context.Context, e *env, args []string) error
	// usageCode is the exit status of a usage error (default 2; run's is 125, as podman's).
	usageCode int
	// rewriteArgs, when set, rewrites the arguments before the flags are parsed.
	rewriteArgs func([]string) []string
	// noStore is a command that uses no store: it has no --store flag.
	noStore bool
}

func commands() []*command {
	return []*command{
		buildCommand(), spinCommand(), planCommand(), verifyCommand(), sourcesCommand(), runContainerCommand(), shellCommand(), compileHelperCommand(), binfmtCommand(),
		importCommand(), exportCommand(), imagesCommand(), inspectCommand(), sbomCommand(), seedLockCommand(), packagesCommand(),
		pushCommand(), pullCommand(), indexCommand(), loginCommand(), logoutCommand(),
		tagCommand(), untagCommand(), gcCommand(), fsckCommand(), cacheCommand(), completionCommand(), versionCommand(),
	}
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	e := &env{stdin: os.Stdin, stdout: stdout, stderr: stderr}
	err := dispatch(ctx, e, args)
	report := func(code int, err error, hint string) int {
		e.reportError(code, err, hint)
		return code
	}
	switch {
	case err == nil:
		return 0
	case errors.Is(err, pflag.ErrHelp):
		return 0
	case errors.As(err, new(*exitCodeError)):
		var ec *exitCodeError
		errors.As(err, &ec)
		if ec.silent {
			return ec.code
		}
		return report(ec.code, err, "")
	case errors.As(err, new(usageError)):
		var ue usageError
		errors.As(err, &ue)
		hint := "Run 'serpent-oci --help' for usage."
		if ue.command != "" {
			hint = fmt.Sprintf("Run 'serpent-oci %s --help' for usage.", ue.command)
		}
		code := 2
		if ue.code != 0 {
			code = ue.code
		}
		return report(code, err, hint)
	case ctx.Err() != nil:
		return report(1, fmt.Errorf("interrupted: %w", err), "")
	default:
		return report(1, err, "")
	}
}

// reportError prints the error a command ended with: "serpent-oci: ERR" and the hint on its
// own line, or, with --log-format json, one JSON line as the logs are (level error, msg,
// exit_code, hint), so that a log reader sees how the run ended.
func (e *env) reportError(code int, err error, hint string) {
	if e.jsonLog {
		line := map[string]any{"level": "error", "msg": err.Error(), "exit_code": code, "time": time.Now().UTC().Format(time.RFC3339)}
		if hint != "" {
			line["hint"] = hint
		}
		b, _ := json.Marshal(line)
		fmt.Fprintf(e.stderr, "%s\n", b)
		return
	}
	fmt.Fprintf(e.stderr, "serpent-oci: %v\n", err)
	if hint != "" {
		fmt.Fprintln(e.stderr, hint)
	}
}

// globalOptions are the flags before the command, other than --store (which sets e.storeDir).
type globalOptions struct {
	logLevel, logFormat      string
	debug, help, showVersion bool
}

// globalFlags defines the flags that come before the command.
func globalFlags(e *env, o *globalOptions) *pflag.FlagSet {
	global := pflag.NewFlagSet("serpent-oci", pflag.ContinueOnError)
	global.SetInterspersed(false)
	global.SetOutput(io.Discard)
	global.StringVar(&e.storeDir, "store", "", "image store directory (default $SERPENT_OCI_STORE or ~/.local/share/serpent-oci/store)")
	global.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	global.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	global.BoolVarP(&o.debug, "debug", "D", false, "same as --log-level debug")
	global.BoolVarP(&o.help, "help", "h", false, "show this help")
	global.BoolVar(&o.showVersion, "version", false, "print serpent-oci's version (as the version command)")
	return global
}

func dispatch(ctx context.Context, e *env, args []string) error {
	var o globalOptions
	global := globalFlags(e, &o)
	if err := global.Parse(args); err != nil {
		return usageError{err: err}
	}
	if o.showVersion {
		fmt.Fprintf(e.stdout, "serpent-oci %s\n", versionString())
		return nil
	}
	if o.help || global.NArg() == 0 {
		printUsage(e.stdout, global)
		if global.NArg() == 0 && !o.help {
			return usagef("no command given")
		}
		return nil
	}
	if o.debug {
		o.logLevel = "debug"
	}
	e.jsonLog = o.logFormat == "json"
	ctx, err := setupLogging(ctx, e.stderr, o.logLevel, o.logFormat)
	if err != nil {
		return usageError{err: err}
	}

	name, rest := global.Arg(0), global.Args()[1:]
	if name == "help" {
		if len(rest) == 0 {
			printUsage(e.stdout, global)
			return nil
		}
		name, rest = rest[0], []string{"--help"}
	}
	if name == completeCommand {
		return runComplete(e, rest)
	}
	var names []string
	for _, c := range commands() {
		if c.name == name {
			return runCommand(ctx, e, c, rest)
		}
		names = append(names, c.name)
	}
	return usagef("unknown command %q%s", name, didYouMean(name, names))
}

// didYouMean is ", did you mean X?" (or "X or Y") for the names closest to a mistyped one, or
// "" when none is close.
func didYouMean(name string, names []string) string {
	close := suggest.Closest(name, names)
	if len(close) == 0 {
		return ""
	}
	quoted := make([]string, len(close))
	for i, c := range close {
		quoted[i] = strconv.Quote(c)
	}
	return "; did you mean " + strings.Join(quoted, " or ") + "?"
}

// commandFlags defines c's flags, with --store (unless c uses no store) and --help.
func commandFlags(e *env, c *command) (*pflag.FlagSet, *bool) {
	fs := pflag.NewFlagSet(c.name, pflag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.SortFlags = false
	if c.flags != nil {
		c.flags(fs)
	}
	if !c.noStore {
		fs.StringVar(&e.storeDir, "store", e.storeDir, "image store directory (also a global flag)")
	}
	return fs, fs.BoolP("help", "h", false, "show help for "+c.name)
}

func runCommand(ctx context.Context, e *env, c *command, args []string) error {
	fs, help := commandFlags(e, c)
	if c.rewriteArgs != nil {
		args = c.rewriteArgs(args)
	}
	if err := fs.Parse(args); err != nil {
		return usageError{err: fmt.Errorf("%s: %w", c.name, err), command: c.name, code: c.usageCode}
	}
	if *help {
		printCommandHelp(e.stdout, c, fs)
		return pflag.ErrHelp
	}
	err := c.run(ctx, e, fs.Args())
	var ue usageError
	if errors.As(err, &ue) && ue.command == "" {
		ue.command, ue.code = c.name, c.usageCode
		return ue
	}
	return err
}

func setupLogging(ctx context.Context, w io.Writer, level, format string) (context.Context, error) {
	logger := logrus.New()
	logger.SetOutput(w)
	lvl, err := logrus.ParseLevel(level)
	if err != nil {
		return ctx, fmt.Errorf("--log-level: %w", err)
	}
	logger.SetLevel(lvl)
	switch format {
	case "text":
		logger.SetFormatter(&logrus.TextFormatter{DisableTimestamp: true})
	case "json":
		logger.SetFormatter(secondsFormatter{&logrus.JSONFormatter{}})
	default:
		return ctx, fmt.Errorf("--log-format %q: want text or json", format)
	}
	return log.WithLogger(ctx, logrus.NewEntry(logger)), nil
}

// secondsFormatter is a JSON formatter that writes durations as seconds (a number), not as
// Go's nanosecond count: {"took": 1.25}, as a log reader expects.
type secondsFormatter struct{ json *logrus.JSONFormatter }

func (f secondsFormatter) Format(entry *logrus.Entry) ([]byte, error) {
	converted := false
	for _, v := range entry.Data {
		if _, ok := v.(time.Duration); ok {
			converted = true
			break
		}
	}
	if converted {
		data := make(logrus.Fields, len(entry.Data))
		for k, v := range entry.Data {
			if d, ok := v.(time.Duration); ok {
				v = d.Seconds()
			}
			data[k] = v
		}
		copied := *entry
		copied.Data = data
		entry = &copied
	}
	return f.json.Format(entry)
}
