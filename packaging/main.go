// Command packaging builds sesam-relay's Debian packages for amd64, arm64
// and armhf with nfpm, from the repository it sits in:
//
//	go -C packaging run .                      # all three, into dist/
//	go -C packaging run . -arch amd64 -version 0.1.1
//
// It is a module of its own so that nfpm and its dependencies stay out of
// the relay's go.mod. The binaries are pure Go (CGO_ENABLED=0), stripped,
// and built with -trimpath, so the packages cross-build from any machine.
package main

import (
	"flag"
	"fmt"
	"log"
	"os"
	"path/filepath"
	"strings"
)

func main() {
	archs := flag.String("arch", "amd64,arm64,armhf", "Debian architectures to build, comma-separated")
	version := flag.String("version", "", "package version (default: the newest entry of changelog.yml)")
	out := flag.String("out", "", "where the .deb files go (default: dist/ at the repository's top)")
	flag.Parse()
	log.SetFlags(0)

	root, err := filepath.Abs("..")
	if err != nil {
		log.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "cmd", "sesam-relay")); err != nil {
		log.Fatalf("run me from the packaging folder (go -C packaging run .): %v", err)
	}
	if *out == "" {
		*out = filepath.Join(root, "dist")
	}
	if *version == "" {
		if *version, err = newestVersion("changelog.yml"); err != nil {
			log.Fatal(err)
		}
	}
	if err := os.MkdirAll(*out, 0o755); err != nil {
		log.Fatal(err)
	}
	work, err := os.MkdirTemp("", "sesam-relay-packaging-")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(work)

	for _, a := range strings.Split(*archs, ",") {
		arch, ok := goArch[a]
		if !ok {
			log.Fatalf("unknown architecture %q: choose among amd64, arm64, armhf", a)
		}
		deb, err := build(root, work, *out, *version, a, arch)
		if err != nil {
			log.Fatalf("%s: %v", a, err)
		}
		fmt.Println(deb)
	}
}
