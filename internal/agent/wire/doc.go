// Package wire holds the types of the agent's HTTP API, the one thing the
// server and the in-sandbox agent share. The agent serves it on a unix
// socket; JSON over HTTP/1.1.
package wire
