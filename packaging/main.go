// Command packaging builds sesam-relay's Debian packages for amd64, arm64
// and armhf with nfpm, from the repository it sits in:
//
//	go -C packaging run .                      # all three, into dist/
//	go -C packaging run . -arch amd64 -version 0.1.1
//	go -C packaging run . -new-repo-key ~/sesam-relay-repo.key
//	go -C packaging run . -repo /srv/apt -repo-key ~/sesam-relay-repo.key -repo-url https://apt.example.fr
//
// With -repo, the packages built are added to that APT repository folder,
// whose indexes are written again and signed with -repo-key.
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

	"github.com/ProtonMail/go-crypto/openpgp"
)

func main() {
	archs := flag.String("arch", "amd64,arm64,armhf", "Debian architectures to build, comma-separated")
	version := flag.String("version", "", "package version (default: the newest entry of changelog.yml)")
	out := flag.String("out", "", "where the .deb files go (default: dist/ at the repository's top)")
	repo := flag.String("repo", "", "also publish the packages into this APT repository folder")
	repoKey := flag.String("repo-key", "", "the repository's private signing key (made by -new-repo-key)")
	repoURL := flag.String("repo-url", "", "where the repository folder is served (https://…), for sesam-relay.list; default: the one it already names")
	newKey := flag.String("new-repo-key", "", "make a repository signing key into this file, then stop")
	flag.Parse()
	log.SetFlags(0)
	if *newKey != "" {
		pub, err := newRepoKey(*newKey, "sesam-relay packages")
		if err != nil {
			log.Fatal(err)
		}
		fmt.Printf("private key written to %s (mode 0600: keep it off the web server, back it up)\n", *newKey)
		os.Stdout.Write(pub)
		return
	}
	var key *openpgp.Entity
	if *repo != "" {
		var err error
		if key, err = readRepoKey(*repoKey); err != nil {
			log.Fatal(err)
		}
	}

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

	var built []string
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
		built = append(built, deb)
	}
	if *repo != "" {
		if err := publish(*repo, built, key, *repoURL); err != nil {
			log.Fatal(err)
		}
		fmt.Printf("published into %s; the practices' source line is in %s\n", *repo, filepath.Join(*repo, "sesam-relay.list"))
	}
}
