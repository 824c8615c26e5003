package main

import (
	"fmt"
	"io"
	"strings"

	"github.com/spf13/pflag"
)

const overview = `serpent-oci builds an operating-system bootstrap as OCI images, stage by stage,
each stage running inside the image of the one before. Images live in a local OCI image
layout (the store): no daemon and no registry needed, and umoci or skopeo read it as it is.`

func printUsage(w io.Writer, global *pflag.FlagSet) {
	fmt.Fprintf(w, "%s\n\nUsage:\n  serpent-oci [global flags] <command> [flags] [arguments]\n\nCommands:\n", overview)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintf(w, "\nGlobal flags:\n%s\n", global.FlagUsages())
	fmt.Fprintln(w, "Run 'serpent-oci <command> --help' for a command's flags and an example.")
	fmt.Fprintln(w, "Exit codes: 0 success, 1 failure, 2 usage error.")
}

func printCommandHelp(w io.Writer, c *command, fs *pflag.FlagSet) {
	fmt.Fprintf(w, "%s\n\nUsage:\n  %s\n", c.summary, synopsis(c))
	if c.long != "" {
		fmt.Fprintf(w, "\n%s\n", strings.TrimSpace(c.long))
	}
	fmt.Fprintf(w, "\nFlags:\n%s", fs.FlagUsages())
	if c.example != "" {
		fmt.Fprintf(w, "\nExample:\n%s\n", indent(strings.TrimSpace(c.example)))
	}
}

// synopsis is the command line as it is typed: the command, its subcommand words (build,
// fetch|list), [flags], then the arguments.
func synopsis(c *command) string {
	words := strings.Fields(c.args)
	sub := 0
	for sub < len(words) && words[sub] == strings.ToLower(words[sub]) && !strings.ContainsAny(words[sub], "[-.") {
		sub++
	}
	parts := append([]string{"serpent-oci", c.name}, words[:sub]...)
	parts = append(parts, "[flags]")
	return strings.Join(append(parts, words[sub:]...), " ")
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}
