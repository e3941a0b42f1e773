// Command madoguchi is the mail and intake gateway of a CSIRT. This file
// only dispatches; each command lives in its own file.
package main
