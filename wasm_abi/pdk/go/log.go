package pdk

import "unsafe"

//go:wasmimport eventgateway log
func hostLog(level int32, ptr unsafe.Pointer, length int32)

// Log levels of the eventgateway.log import.
const (
	LevelDebug int32 = iota
	LevelInfo
	LevelWarn
	LevelError
)

// Log writes one line to the gateway's log, tagged with the plugin's name.
func Log(level int32, message string) {
	hostLog(level, unsafe.Pointer(unsafe.StringData(message)), int32(len(message)))
}

func Debug(message string) { Log(LevelDebug, message) }
func Info(message string)  { Log(LevelInfo, message) }
func Warn(message string)  { Log(LevelWarn, message) }
func Error(message string) { Log(LevelError, message) }
