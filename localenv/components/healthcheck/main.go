// Command healthcheck runs the GitOps health checks of docs/gitops.md against one object,
// the way Argo CD and Flux run them, so that tests/cluster/test_gitops_health.py can hold
// the checks to what the docs promise. Built by localenv/components/build.py like the
// other programs of the local environment; nothing here ships.
//
//	healthcheck --lua examples/gitops/argocd-health.lua < mlmodel.json
//	healthcheck --kustomization examples/gitops/flux-kustomization.yaml < mlmodel.json
//	healthcheck --cel-current EXPR [--cel-in-progress EXPR] [--cel-failed EXPR] < mlmodel.json
//
// The object is read as JSON (`kubectl get -o json`), numbers as the API machinery's
// unstructured objects have them (int64 when integral, else float64). It prints the
// verdict as {"status": ..., "message": ...}: with --lua one of Argo CD's health statuses
// (Healthy, Progressing, Degraded, Suspended, Missing, Unknown), otherwise kstatus' (Current,
// InProgress, Failed, Unknown). A check that fails while evaluating is a verdict too, Unknown
// with the error, as both tools show it; exit status 2 is reserved for a check that cannot
// be set up (a missing file, an expression that does not parse, no entry for the object).
//
// Argo CD (util/lua in argo-cd): gopher-lua without its standard libraries, then package,
// base, table and an os with time and date only; the object as the global `obj`; a one
// second limit; the returned table encoded by gopher-json and read as a HealthStatus, whose
// status must be a known one or the verdict is Unknown "Lua returned an invalid health
// status". Flux (runtime/cel in fluxcd/pkg, RFC 0009): expressions parsed, not compiled,
// in the environment NewExpression builds; status.observedGeneration, when present and
// unlike metadata.generation, is InProgress before any expression runs; then inProgress,
// failed and current in that order, the first true one wins; none true is InProgress.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/google/cel-go/cel"
	"github.com/google/cel-go/common/types"
	"github.com/google/cel-go/ext"
	lua "github.com/yuin/gopher-lua"
	luajson "layeh.com/gopher-json"
	"sigs.k8s.io/yaml"
)

type verdict struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

func unknown(err error) verdict {
	return verdict{Status: "Unknown", Message: err.Error()}
}

// --- the object --------------------------------------------------------------------------

// readObject decodes JSON as k8s.io/apimachinery's util/json does for unstructured objects.
func readObject(in io.Reader) (map[string]any, error) {
	decoder := json.NewDecoder(in)
	decoder.UseNumber()
	var object map[string]any
	if err := decoder.Decode(&object); err != nil {
		return nil, fmt.Errorf("reading the object (JSON on stdin): %w", err)
	}
	if object == nil {
		return nil, errors.New("reading the object (JSON on stdin): not an object")
	}
	converted, err := convertNumbers(object)
	if err != nil {
		return nil, err
	}
	return converted.(map[string]any), nil
}

func convertNumbers(value any) (any, error) {
	switch v := value.(type) {
	case map[string]any:
		for key, item := range v {
			converted, err := convertNumbers(item)
			if err != nil {
				return nil, err
			}
			v[key] = converted
		}
	case []any:
		for i, item := range v {
			converted, err := convertNumbers(item)
			if err != nil {
				return nil, err
			}
			v[i] = converted
		}
	case json.Number:
		if i, err := strconv.ParseInt(string(v), 10, 64); err == nil {
			return i, nil
		}
		return strconv.ParseFloat(string(v), 64)
	}
	return value, nil
}

// --- Argo CD --------------------------------------------------------------------------------

var argoHealthStatuses = map[string]bool{
	"Healthy": true, "Progressing": true, "Degraded": true,
	"Suspended": true, "Missing": true, "Unknown": true,
}

func argoCDHealth(script string, object map[string]any) verdict {
	state := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer state.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{
		{lua.LoadLibName, lua.OpenPackage},
		{lua.BaseLibName, lua.OpenBase},
		{lua.TabLibName, lua.OpenTable},
		{lua.OsLibName, lua.OpenOs},
	} {
		err := state.CallByParam(
			lua.P{Fn: state.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name),
		)
		if err != nil {
			return unknown(err)
		}
	}
	keepSafeOs(state)
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	state.SetContext(ctx)
	state.SetGlobal("obj", toLua(state, object))
	if err := state.DoString(script); err != nil {
		return unknown(err)
	}
	returned := state.Get(-1)
	if returned.Type() != lua.LTTable {
		return unknown(fmt.Errorf("expect table output from Lua script, not %s", returned.Type()))
	}
	encoded, err := luajson.Encode(returned)
	if err != nil {
		return unknown(err)
	}
	var health struct {
		Status  string `json:"status,omitempty"`
		Message string `json:"message,omitempty"`
	}
	if err := json.Unmarshal(encoded, &health); err != nil {
		return unknown(err)
	}
	if !argoHealthStatuses[health.Status] {
		return verdict{Status: "Unknown", Message: "Lua returned an invalid health status"}
	}
	return verdict{Status: health.Status, Message: health.Message}
}

// keepSafeOs leaves of the os library only what Argo CD's safe os offers, for `os.x` and
// for `require("os")` alike.
func keepSafeOs(state *lua.LState) {
	full := state.GetGlobal(lua.OsLibName).(*lua.LTable)
	safe := state.NewTable()
	for _, name := range []string{"time", "date"} {
		safe.RawSetString(name, full.RawGetString(name))
	}
	state.SetGlobal(lua.OsLibName, safe)
	state.SetField(state.GetField(state.Get(lua.RegistryIndex), "_LOADED"), lua.OsLibName, safe)
}

// toLua is Argo CD's decodeValue: tables for maps and lists, numbers for numbers.
func toLua(state *lua.LState, value any) lua.LValue {
	switch v := value.(type) {
	case bool:
		return lua.LBool(v)
	case float64:
		return lua.LNumber(v)
	case int64:
		return lua.LNumber(v)
	case string:
		return lua.LString(v)
	case []any:
		table := state.CreateTable(len(v), 0)
		for _, item := range v {
			table.Append(toLua(state, item))
		}
		return table
	case map[string]any:
		table := state.CreateTable(0, len(v))
		for key, item := range v {
			table.RawSetH(lua.LString(key), toLua(state, item))
		}
		return table
	}
	return lua.LNil
}

// --- Flux -----------------------------------------------------------------------------------

type expressions struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
	Current    string `json:"current"`
	InProgress string `json:"inProgress"`
	Failed     string `json:"failed"`
}

type expression struct {
	text    string
	program cel.Program
}

// parse builds the program as fluxcd/pkg's cel.NewExpression does without WithCompile.
func parse(text string) (*expression, error) {
	env, err := cel.NewEnv(
		cel.HomogeneousAggregateLiterals(),
		cel.EagerlyValidateDeclarations(true),
		cel.DefaultUTCTimeZone(true),
		cel.CrossTypeNumericComparisons(true),
		cel.OptionalTypes(),
		ext.Strings(),
		ext.Sets(),
		ext.Encoders(),
	)
	if err != nil {
		return nil, fmt.Errorf("failed to create CEL environment: %w", err)
	}
	ast, issues := env.Parse(text)
	if issues != nil {
		return nil, fmt.Errorf("failed to parse the CEL expression '%s': %s", text, issues.String())
	}
	program, err := env.Program(
		ast, cel.EvalOptions(cel.OptOptimize), cel.InterruptCheckFrequency(100),
	)
	if err != nil {
		return nil, fmt.Errorf("failed to create CEL program: %w", err)
	}
	return &expression{text: text, program: program}, nil
}

func (e *expression) evaluate(object map[string]any) (bool, error) {
	value, _, err := e.program.ContextEval(context.Background(), object)
	if err != nil {
		return false, fmt.Errorf("failed to evaluate the CEL expression '%s': %w", e.text, err)
	}
	result, ok := value.(types.Bool)
	if !ok {
		return false, fmt.Errorf("failed to evaluate CEL expression as boolean: '%s'", e.text)
	}
	return bool(result), nil
}

type statusEvaluator struct {
	inProgress, failed, current *expression
}

func newStatusEvaluator(exprs expressions) (*statusEvaluator, error) {
	if exprs.Current == "" {
		return nil, errors.New("expression Current not specified")
	}
	evaluator := &statusEvaluator{}
	for _, e := range []struct {
		name, text string
		into       **expression
	}{
		{"Current", exprs.Current, &evaluator.current},
		{"Failed", exprs.Failed, &evaluator.failed},
		{"InProgress", exprs.InProgress, &evaluator.inProgress},
	} {
		if e.text == "" {
			continue
		}
		parsed, err := parse(e.text)
		if err != nil {
			return nil, fmt.Errorf("failed to parse the expression %s: %w", e.name, err)
		}
		*e.into = parsed
	}
	return evaluator, nil
}

func (s *statusEvaluator) evaluate(object map[string]any) verdict {
	observed, found, err := nestedInt64(object, "status", "observedGeneration")
	if err != nil {
		return unknown(err)
	}
	if found {
		generation, found, err := nestedInt64(object, "metadata", "generation")
		if err != nil {
			return unknown(err)
		}
		if found && observed != generation {
			return verdict{Status: "InProgress"}
		}
	}
	for _, e := range []struct {
		expr   *expression
		status string
	}{
		{s.inProgress, "InProgress"},
		{s.failed, "Failed"},
		{s.current, "Current"},
	} {
		if e.expr == nil {
			continue
		}
		result, err := e.expr.evaluate(object)
		if err != nil {
			return unknown(err)
		}
		if result {
			return verdict{Status: e.status}
		}
	}
	return verdict{Status: "InProgress"}
}

// nestedInt64 is unstructured.NestedInt64: absent is not an error, another type is.
func nestedInt64(object map[string]any, fields ...string) (int64, bool, error) {
	var value any = object
	for i, field := range fields {
		parent, ok := value.(map[string]any)
		if !ok {
			return 0, false, fmt.Errorf("%v accessor error: %v is of the type %T, expected map[string]interface{}",
				strings.Join(fields[:i], "."), value, value)
		}
		value, ok = parent[field]
		if !ok {
			return 0, false, nil
		}
	}
	number, ok := value.(int64)
	if !ok {
		return 0, false, fmt.Errorf("%v accessor error: %v is of the type %T, expected int64",
			strings.Join(fields, "."), value, value)
	}
	return number, true, nil
}

// forObject is the entry of a Kustomization's spec.healthCheckExprs that Flux applies to
// `object`: the one of its group and kind (the version is not compared).
func forObject(kustomization []byte, object map[string]any) (expressions, error) {
	var parsed struct {
		Spec struct {
			HealthCheckExprs []expressions `json:"healthCheckExprs"`
		} `json:"spec"`
	}
	if err := yaml.Unmarshal(kustomization, &parsed); err != nil {
		return expressions{}, err
	}
	apiVersion, _ := object["apiVersion"].(string)
	kind, _ := object["kind"].(string)
	var matches []expressions
	for _, entry := range parsed.Spec.HealthCheckExprs {
		if group(entry.APIVersion) == group(apiVersion) && entry.Kind == kind {
			matches = append(matches, entry)
		}
	}
	switch len(matches) {
	case 0:
		return expressions{}, fmt.Errorf("no spec.healthCheckExprs entry for %s %s", apiVersion, kind)
	case 1:
		return matches[0], nil
	}
	return expressions{}, fmt.Errorf("%d spec.healthCheckExprs entries for %s %s", len(matches), apiVersion, kind)
}

func group(apiVersion string) string {
	if g, _, found := strings.Cut(apiVersion, "/"); found {
		return g
	}
	return ""
}

// --- command line ---------------------------------------------------------------------------

func run(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	flags := flag.NewFlagSet("healthcheck", flag.ContinueOnError)
	flags.SetOutput(stderr)
	luaFile := flags.String("lua", "", "Argo CD: a resource health Lua script")
	kustomizationFile := flags.String("kustomization", "", "Flux: a Kustomization with spec.healthCheckExprs")
	var exprs expressions
	flags.StringVar(&exprs.Current, "cel-current", "", "Flux: the current expression")
	flags.StringVar(&exprs.InProgress, "cel-in-progress", "", "Flux: the inProgress expression")
	flags.StringVar(&exprs.Failed, "cel-failed", "", "Flux: the failed expression")
	if err := flags.Parse(args); err != nil {
		return 2
	}
	chosen := 0
	for _, given := range []bool{*luaFile != "", *kustomizationFile != "", exprs != (expressions{})} {
		if given {
			chosen++
		}
	}
	if chosen != 1 || flags.NArg() != 0 {
		fmt.Fprintln(stderr, "give one of --lua FILE, --kustomization FILE or --cel-current EXPR (with --cel-in-progress, --cel-failed); the object as JSON on stdin")
		return 2
	}
	result, err := check(*luaFile, *kustomizationFile, exprs, stdin)
	if err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 2
	}
	var out bytes.Buffer
	encoder := json.NewEncoder(&out)
	encoder.SetEscapeHTML(false)
	if err := encoder.Encode(result); err != nil {
		fmt.Fprintf(stderr, "healthcheck: %v\n", err)
		return 2
	}
	if _, err := stdout.Write(out.Bytes()); err != nil {
		return 2
	}
	return 0
}

func check(luaFile, kustomizationFile string, exprs expressions, stdin io.Reader) (verdict, error) {
	object, err := readObject(stdin)
	if err != nil {
		return verdict{}, err
	}
	if luaFile != "" {
		script, err := os.ReadFile(luaFile)
		if err != nil {
			return verdict{}, err
		}
		return argoCDHealth(string(script), object), nil
	}
	if kustomizationFile != "" {
		kustomization, err := os.ReadFile(kustomizationFile)
		if err != nil {
			return verdict{}, err
		}
		if exprs, err = forObject(kustomization, object); err != nil {
			return verdict{}, fmt.Errorf("%s: %w", kustomizationFile, err)
		}
	}
	evaluator, err := newStatusEvaluator(exprs)
	if err != nil {
		return verdict{}, err
	}
	return evaluator.evaluate(object), nil
}

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
