package dataplane

import (
	"errors"
	"net/http"

	"github.com/tidepool-dev/tidepool/internal/agent/client"
	"github.com/tidepool-dev/tidepool/internal/agent/wire"
	"github.com/tidepool-dev/tidepool/internal/arm"
)

// agentError maps an error from a session's agent. Errors the caller caused
// (a missing file, a bad path) keep their status with tidepool's own
// message; everything else is a 502 with a generic message: the agent's
// text may name paths of the host or the sandbox. Nil when err is not
// from an agent.
func agentError(err error) *arm.Error {
	var ce *client.Error
	if !errors.As(err, &ce) {
		if isAgentTransport(err) {
			return badGateway(err)
		}
		return nil
	}
	e := func(status int, code, msg string) *arm.Error {
		return &arm.Error{Status: status, Code: code, Message: msg, Err: err}
	}
	switch ce.Code {
	case wire.CodeFileNotFound:
		return e(http.StatusNotFound, "FileNotFound", "The file or directory was not found in the session.")
	case wire.CodeInvalidPath:
		return e(http.StatusBadRequest, "InvalidFilePath", "The file path is invalid: it must stay inside /mnt/data.")
	case wire.CodeIsADirectory:
		return e(http.StatusBadRequest, "IsADirectory", "The path names a directory, not a file.")
	case wire.CodeNotADirectory:
		return e(http.StatusBadRequest, "NotADirectory", "The path names a file, not a directory.")
	case wire.CodeDirectoryNotEmpty:
		return e(http.StatusConflict, "DirectoryNotEmpty", "The directory is not empty.")
	case wire.CodeAlreadyExists:
		return e(http.StatusConflict, "AlreadyExists", "A file or directory with that name already exists.")
	case wire.CodePayloadTooLarge:
		return e(http.StatusRequestEntityTooLarge, "PayloadTooLarge", "The file is larger than the session accepts.")
	case wire.CodeInsufficientStorage:
		return e(http.StatusInsufficientStorage, "InsufficientStorage", "The session's storage is full.")
	case wire.CodeInvalidCwd:
		return e(http.StatusBadRequest, "InvalidWorkingDirectory", "The working directory does not exist in the session.")
	case wire.CodeUnknownLanguage, wire.CodeNotImplemented:
		return e(http.StatusBadRequest, "UnsupportedOperation", "The session's container does not support this operation.")
	case wire.CodeKernelUnavailable:
		return e(http.StatusBadGateway, "KernelUnavailable", "The session's interpreter is unavailable; retry, or use a new identifier.")
	}
	return badGateway(err)
}

func badGateway(err error) *arm.Error {
	return &arm.Error{Status: http.StatusBadGateway, Code: "SessionUnavailable",
		Message: "The session did not answer. Retry the request; if it keeps failing, use a new identifier.", Err: err}
}

// isAgentTransport reports errors of the agent client's transport (the
// socket refused, the connection broke).
func isAgentTransport(err error) bool {
	var ne interface{ Timeout() bool }
	return errors.As(err, &ne) || errors.Is(err, errAgent)
}

// errAgent marks errors of talking to an agent that are no *client.Error.
var errAgent = errors.New("agent")

// fromAgent marks an error of an agent call so that writeError answers 502
// (unless the agent classified it).
func fromAgent(err error) error {
	if err == nil {
		return nil
	}
	var ce *client.Error
	if errors.As(err, &ce) {
		return err
	}
	return errors.Join(errAgent, err)
}
