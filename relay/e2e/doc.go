// Package e2e holds the end-to-end tests: the real sesam-relay binary,
// driven by real clients (Python's smtplib, curl, swaks) in front of an
// in-process provider that can fail on demand, and the benchmark beside
// Postfix. It has no code of its own.
package e2e
