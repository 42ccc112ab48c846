package deploy_test

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/orderflow/orderflow/processor"
	"github.com/orderflow/orderflow/topics"
)

// object is one Kubernetes manifest, with the fields the checks read.
type object struct {
	file       string
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Metadata   struct {
		Name      string            `yaml:"name"`
		Namespace string            `yaml:"namespace"`
		Labels    map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec       yaml.Node         `yaml:"spec"`
	Data       map[string]string `yaml:"data"`
	StringData map[string]string `yaml:"stringData"`
}

func (o *object) String() string { return fmt.Sprintf("%s: %s %s", o.file, o.Kind, o.Metadata.Name) }

// apiVersions are the kinds the manifests may hold and their API version.
var apiVersions = map[string]string{
	"ConfigMap":               "v1",
	"Secret":                  "v1",
	"Service":                 "v1",
	"ServiceAccount":          "v1",
	"PersistentVolumeClaim":   "v1",
	"Deployment":              "apps/v1",
	"Job":                     "batch/v1",
	"HorizontalPodAutoscaler": "autoscaling/v2",
	"PodDisruptionBudget":     "policy/v1",
	"ScaledObject":            "keda.sh/v1alpha1",
}

type labelSelector struct {
	MatchLabels map[string]string `yaml:"matchLabels"`
}

type podTemplate struct {
	Metadata struct {
		Labels map[string]string `yaml:"labels"`
	} `yaml:"metadata"`
	Spec podSpec `yaml:"spec"`
}

type podSpec struct {
	ServiceAccountName            string `yaml:"serviceAccountName"`
	TerminationGracePeriodSeconds *int   `yaml:"terminationGracePeriodSeconds"`
	RestartPolicy                 string `yaml:"restartPolicy"`
	SecurityContext               struct {
		RunAsNonRoot *bool `yaml:"runAsNonRoot"`
	} `yaml:"securityContext"`
	Containers []container `yaml:"containers"`
	Volumes    []struct {
		Name                  string `yaml:"name"`
		PersistentVolumeClaim *struct {
			ClaimName string `yaml:"claimName"`
		} `yaml:"persistentVolumeClaim"`
	} `yaml:"volumes"`
}

type container struct {
	Name    string   `yaml:"name"`
	Image   string   `yaml:"image"`
	Command []string `yaml:"command"`
	Args    []string `yaml:"args"`
	Ports   []struct {
		Name          string `yaml:"name"`
		ContainerPort int    `yaml:"containerPort"`
	} `yaml:"ports"`
	ReadinessProbe *probeSpec `yaml:"readinessProbe"`
	LivenessProbe  *probeSpec `yaml:"livenessProbe"`
	StartupProbe   *probeSpec `yaml:"startupProbe"`
	EnvFrom        []struct {
		ConfigMapRef *struct{ Name string } `yaml:"configMapRef"`
		SecretRef    *struct{ Name string } `yaml:"secretRef"`
	} `yaml:"envFrom"`
	Env []struct {
		Name  string `yaml:"name"`
		Value string `yaml:"value"`
	} `yaml:"env"`
	Resources struct {
		Requests map[string]string `yaml:"requests"`
		Limits   map[string]string `yaml:"limits"`
	} `yaml:"resources"`
	SecurityContext struct {
		RunAsNonRoot             *bool `yaml:"runAsNonRoot"`
		ReadOnlyRootFilesystem   *bool `yaml:"readOnlyRootFilesystem"`
		AllowPrivilegeEscalation *bool `yaml:"allowPrivilegeEscalation"`
	} `yaml:"securityContext"`
	VolumeMounts []struct {
		Name      string `yaml:"name"`
		MountPath string `yaml:"mountPath"`
	} `yaml:"volumeMounts"`
	Lifecycle struct {
		PreStop *struct {
			Sleep *struct {
				Seconds int `yaml:"seconds"`
			} `yaml:"sleep"`
		} `yaml:"preStop"`
	} `yaml:"lifecycle"`
}

type probeSpec struct {
	HTTPGet *struct {
		Path string `yaml:"path"`
		Port any    `yaml:"port"`
	} `yaml:"httpGet"`
}

type deploymentSpec struct {
	Replicas *int          `yaml:"replicas"`
	Selector labelSelector `yaml:"selector"`
	Template podTemplate   `yaml:"template"`
}

type jobSpec struct {
	Template podTemplate `yaml:"template"`
}

type serviceSpec struct {
	Selector map[string]string `yaml:"selector"`
	Ports    []struct {
		Name       string `yaml:"name"`
		Port       int    `yaml:"port"`
		TargetPort any    `yaml:"targetPort"`
	} `yaml:"ports"`
}

type scaleTargetRef struct {
	APIVersion string `yaml:"apiVersion"`
	Kind       string `yaml:"kind"`
	Name       string `yaml:"name"`
}

type hpaSpec struct {
	ScaleTargetRef scaleTargetRef `yaml:"scaleTargetRef"`
	MinReplicas    int            `yaml:"minReplicas"`
	MaxReplicas    int            `yaml:"maxReplicas"`
	Metrics        []any          `yaml:"metrics"`
}

type scaledObjectSpec struct {
	ScaleTargetRef  scaleTargetRef `yaml:"scaleTargetRef"`
	MinReplicaCount *int           `yaml:"minReplicaCount"`
	MaxReplicaCount int            `yaml:"maxReplicaCount"`
	Triggers        []struct {
		Type     string            `yaml:"type"`
		Metadata map[string]string `yaml:"metadata"`
	} `yaml:"triggers"`
}

type pdbSpec struct {
	Selector       labelSelector `yaml:"selector"`
	MinAvailable   any           `yaml:"minAvailable"`
	MaxUnavailable any           `yaml:"maxUnavailable"`
}

type pvcSpec struct {
	AccessModes []string `yaml:"accessModes"`
	Resources   struct {
		Requests map[string]string `yaml:"requests"`
	} `yaml:"resources"`
}

// loadObjects reads every document of every YAML file in dir except the
// kustomization.
func loadObjects(dir string) ([]*object, error) {
	files, err := filepath.Glob(filepath.Join(dir, "*.yaml"))
	if err != nil {
		return nil, err
	}
	var objs []*object
	for _, f := range files {
		if filepath.Base(f) == "kustomization.yaml" {
			continue
		}
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, err
		}
		dec := yaml.NewDecoder(bytes.NewReader(b))
		for {
			o := &object{file: filepath.Base(f)}
			err := dec.Decode(o)
			if errors.Is(err, io.EOF) {
				break
			}
			if err != nil {
				return nil, fmt.Errorf("%s: %w", f, err)
			}
			if o.Kind == "" && o.APIVersion == "" && o.Metadata.Name == "" {
				continue // an empty document
			}
			objs = append(objs, o)
		}
	}
	return objs, nil
}

// manifests is the parsed set, indexed for cross-references.
type manifests struct {
	objs   []*object
	byKind map[string]map[string]*object
}

func newManifests(objs []*object) *manifests {
	m := &manifests{objs: objs, byKind: map[string]map[string]*object{}}
	for _, o := range objs {
		if m.byKind[o.Kind] == nil {
			m.byKind[o.Kind] = map[string]*object{}
		}
		m.byKind[o.Kind][o.Metadata.Name] = o
	}
	return m
}

func decodeSpec[T any](o *object) (T, error) {
	var s T
	if o.Spec.Kind == 0 {
		return s, fmt.Errorf("%s: no spec", o)
	}
	if err := o.Spec.Decode(&s); err != nil {
		return s, fmt.Errorf("%s: spec: %w", o, err)
	}
	return s, nil
}

// subset reports whether every label of sel is in lbls.
func subset(sel, lbls map[string]string) bool {
	for k, v := range sel {
		if lbls[k] != v {
			return false
		}
	}
	return true
}

// deploymentsSelected returns the Deployments whose pods sel selects.
func (m *manifests) deploymentsSelected(sel map[string]string) []*object {
	var out []*object
	for _, name := range keys(m.byKind["Deployment"]) {
		d := m.byKind["Deployment"][name]
		spec, err := decodeSpec[deploymentSpec](d)
		if err == nil && len(sel) > 0 && subset(sel, spec.Template.Metadata.Labels) {
			out = append(out, d)
		}
	}
	return out
}

// check returns every problem of the manifests: missing fields, broken
// references and settings that contradict the code.
func (m *manifests) check(c *cli) []string {
	var problems []string
	bad := func(o *object, format string, args ...any) {
		problems = append(problems, o.String()+": "+fmt.Sprintf(format, args...))
	}
	for _, o := range m.objs {
		if o.Kind == "" || o.APIVersion == "" || o.Metadata.Name == "" {
			bad(o, "apiVersion, kind and metadata.name are required")
			continue
		}
		want, ok := apiVersions[o.Kind]
		switch {
		case !ok:
			bad(o, "unexpected kind (known: %s)", strings.Join(keys(apiVersions), ", "))
			continue
		case o.APIVersion != want:
			bad(o, "apiVersion %s, want %s", o.APIVersion, want)
		}
		if o.Metadata.Namespace != "" {
			bad(o, "sets namespace %q; the manifests are namespace-agnostic", o.Metadata.Namespace)
		}
		var err error
		switch o.Kind {
		case "Deployment":
			var s deploymentSpec
			if s, err = decodeSpec[deploymentSpec](o); err == nil {
				if len(s.Selector.MatchLabels) == 0 || !subset(s.Selector.MatchLabels, s.Template.Metadata.Labels) {
					bad(o, "spec.selector.matchLabels %v must be non-empty and match the template labels %v", s.Selector.MatchLabels, s.Template.Metadata.Labels)
				}
				problems = append(problems, m.checkPod(o, s.Template.Spec, c, true)...)
			}
		case "Job":
			var s jobSpec
			if s, err = decodeSpec[jobSpec](o); err == nil {
				if s.Template.Spec.RestartPolicy != "OnFailure" && s.Template.Spec.RestartPolicy != "Never" {
					bad(o, "restartPolicy %q, want OnFailure or Never", s.Template.Spec.RestartPolicy)
				}
				problems = append(problems, m.checkPod(o, s.Template.Spec, c, false)...)
			}
		case "Service":
			var s serviceSpec
			if s, err = decodeSpec[serviceSpec](o); err == nil {
				problems = append(problems, m.checkService(o, s)...)
			}
		case "HorizontalPodAutoscaler":
			var s hpaSpec
			if s, err = decodeSpec[hpaSpec](o); err == nil {
				problems = append(problems, m.checkTarget(o, s.ScaleTargetRef)...)
				if s.MaxReplicas < 1 || s.MaxReplicas < s.MinReplicas || len(s.Metrics) == 0 {
					bad(o, "needs maxReplicas >= minReplicas >= 1 and metrics")
				}
			}
		case "ScaledObject":
			var s scaledObjectSpec
			if s, err = decodeSpec[scaledObjectSpec](o); err == nil {
				problems = append(problems, m.checkScaledObject(o, s, c)...)
			}
		case "PodDisruptionBudget":
			var s pdbSpec
			if s, err = decodeSpec[pdbSpec](o); err == nil {
				if len(m.deploymentsSelected(s.Selector.MatchLabels)) == 0 {
					bad(o, "selector %v selects no Deployment's pods", s.Selector.MatchLabels)
				}
				if (s.MinAvailable == nil) == (s.MaxUnavailable == nil) {
					bad(o, "set exactly one of minAvailable and maxUnavailable")
				}
			}
		case "PersistentVolumeClaim":
			var s pvcSpec
			if s, err = decodeSpec[pvcSpec](o); err == nil && (len(s.AccessModes) == 0 || s.Resources.Requests["storage"] == "") {
				bad(o, "needs accessModes and resources.requests.storage")
			}
		case "ConfigMap", "Secret":
			if len(o.Data)+len(o.StringData) == 0 {
				bad(o, "holds no data")
			}
			for _, k := range append(keys(o.Data), keys(o.StringData)...) {
				problems = append(problems, c.checkEnv(o.String(), k, "gateway", "processor", "topics create")...)
			}
		}
		if err != nil {
			problems = append(problems, err.Error())
		}
	}
	sort.Strings(problems)
	return problems
}

// checkPod checks a Deployment's or Job's pod: images, the command line,
// references, non-root read-only containers, resources and, for a
// long-running command, probes and a grace period longer than its drain.
func (m *manifests) checkPod(o *object, pod podSpec, c *cli, serving bool) []string {
	var problems []string
	bad := func(format string, args ...any) {
		problems = append(problems, o.String()+": "+fmt.Sprintf(format, args...))
	}
	if len(pod.Containers) == 0 {
		bad("no containers")
	}
	if sa := pod.ServiceAccountName; sa != "" && m.byKind["ServiceAccount"][sa] == nil {
		bad("service account %q does not exist", sa)
	}
	claims := map[string]bool{}
	for _, v := range pod.Volumes {
		claims[v.Name] = true
		if v.PersistentVolumeClaim != nil && m.byKind["PersistentVolumeClaim"][v.PersistentVolumeClaim.ClaimName] == nil {
			bad("volume %s: claim %q does not exist", v.Name, v.PersistentVolumeClaim.ClaimName)
		}
	}
	for _, ct := range pod.Containers {
		where := fmt.Sprintf("%s container %s", o, ct.Name)
		if ct.Name == "" || ct.Image == "" {
			bad("every container needs a name and an image")
		}
		if len(ct.Command) > 0 {
			bad("container %s overrides the image's entrypoint; pass the command in args", ct.Name)
		}
		nonRoot := ct.SecurityContext.RunAsNonRoot
		if nonRoot == nil {
			nonRoot = pod.SecurityContext.RunAsNonRoot
		}
		if nonRoot == nil || !*nonRoot {
			bad("container %s must run as non-root (runAsNonRoot: true)", ct.Name)
		}
		if p := ct.SecurityContext.ReadOnlyRootFilesystem; p == nil || !*p {
			bad("container %s needs readOnlyRootFilesystem: true", ct.Name)
		}
		if p := ct.SecurityContext.AllowPrivilegeEscalation; p == nil || *p {
			bad("container %s needs allowPrivilegeEscalation: false", ct.Name)
		}
		if ct.Resources.Requests["cpu"] == "" || ct.Resources.Requests["memory"] == "" || ct.Resources.Limits["memory"] == "" {
			bad("container %s needs cpu and memory requests and a memory limit", ct.Name)
		}
		for _, vm := range ct.VolumeMounts {
			if !claims[vm.Name] {
				bad("container %s mounts unknown volume %q", ct.Name, vm.Name)
			}
		}
		for _, ef := range ct.EnvFrom {
			if ef.ConfigMapRef != nil && m.byKind["ConfigMap"][ef.ConfigMapRef.Name] == nil {
				bad("container %s: ConfigMap %q does not exist", ct.Name, ef.ConfigMapRef.Name)
			}
			if ef.SecretRef != nil && m.byKind["Secret"][ef.SecretRef.Name] == nil {
				bad("container %s: Secret %q does not exist", ct.Name, ef.SecretRef.Name)
			}
		}
		command, flagArgs, err := c.command(ct.Args)
		if err != nil {
			bad("container %s args %v: %v", ct.Name, ct.Args, err)
			continue
		}
		for _, e := range ct.Env {
			problems = append(problems, c.checkEnv(where, e.Name, command)...)
		}
		flags, ps := c.effectiveFlags(where, command, flagArgs)
		problems = append(problems, ps...)
		if !serving {
			continue
		}
		grace := 30 // Kubernetes' default
		if pod.TerminationGracePeriodSeconds != nil {
			grace = *pod.TerminationGracePeriodSeconds
		}
		preStop := 0
		if ct.Lifecycle.PreStop != nil && ct.Lifecycle.PreStop.Sleep != nil {
			preStop = ct.Lifecycle.PreStop.Sleep.Seconds
		}
		drain, ps := drainDeadline(where, command, flags)
		problems = append(problems, ps...)
		if need := time.Duration(preStop)*time.Second + drain; time.Duration(grace)*time.Second <= need {
			bad("terminationGracePeriodSeconds %d must exceed the preStop sleep (%ds) plus orderflow %s's drain (%s)", grace, preStop, command, drain)
		}
		for kind, p := range map[string]*probeSpec{"readinessProbe": ct.ReadinessProbe, "livenessProbe": ct.LivenessProbe} {
			if p == nil || p.HTTPGet == nil || p.HTTPGet.Path == "" {
				bad("container %s needs an HTTP %s", ct.Name, kind)
				continue
			}
			if _, _, err := probeListener(ct, flags, p.HTTPGet.Port); err != nil {
				bad("container %s %s: %v", ct.Name, kind, err)
			}
		}
	}
	return problems
}

// drainDeadline is how long a command may take after SIGTERM, from its
// flags and the processor's defaults: the gateway finishes requests and
// flushes within --shutdown-timeout; the processor gives steps
// --revoke-deadline, then persists and commits (each write bounded by the
// produce timeout) and waits for alerts.
func drainDeadline(where, command string, flags map[string]string) (time.Duration, []string) {
	switch command {
	case "gateway":
		return duration(where, "shutdown-timeout", flags["shutdown-timeout"])
	case "processor":
		revoke, ps := duration(where, "revoke-deadline", flags["revoke-deadline"])
		d := processor.DefaultConfig(topics.New(""))
		return revoke + d.ProduceTimeout + d.AlertTimeout, ps
	}
	return 0, []string{fmt.Sprintf("%s: orderflow %s is not a long-running command", where, command)}
}

// probeListener resolves a probe's port (a name or a number) to the
// container port and the listen-address flag serving it.
func probeListener(ct container, flags map[string]string, port any) (int, string, error) {
	num := 0
	switch p := port.(type) {
	case int:
		num = p
	case string:
		for _, cp := range ct.Ports {
			if cp.Name == p {
				num = cp.ContainerPort
			}
		}
		if num == 0 {
			return 0, "", fmt.Errorf("port %q is not a named port of the container", p)
		}
	default:
		return 0, "", fmt.Errorf("port %v: want a name or a number", port)
	}
	for _, f := range keys(flags) {
		if isAddrFlag(f) && addrPort(flags[f]) == num {
			return num, f, nil
		}
	}
	return num, "", fmt.Errorf("no --*-addr listener of the command is on port %d", num)
}

func (m *manifests) checkService(o *object, s serviceSpec) []string {
	var problems []string
	bad := func(format string, args ...any) {
		problems = append(problems, o.String()+": "+fmt.Sprintf(format, args...))
	}
	deps := m.deploymentsSelected(s.Selector)
	if len(deps) == 0 {
		bad("selector %v selects no Deployment's pods", s.Selector)
		return problems
	}
	if len(s.Ports) == 0 {
		bad("no ports")
	}
	for _, p := range s.Ports {
		if p.Port == 0 {
			bad("port %q has no port number", p.Name)
		}
		name, ok := p.TargetPort.(string)
		if !ok {
			continue
		}
		for _, d := range deps {
			spec, _ := decodeSpec[deploymentSpec](d)
			found := false
			for _, ct := range spec.Template.Spec.Containers {
				for _, cp := range ct.Ports {
					found = found || cp.Name == name
				}
			}
			if !found {
				bad("targetPort %q is not a container port of %s", name, d.Metadata.Name)
			}
		}
	}
	return problems
}

func (m *manifests) checkTarget(o *object, ref scaleTargetRef) []string {
	if ref.Name == "" || (ref.Kind != "" && ref.Kind != "Deployment") || m.byKind["Deployment"][ref.Name] == nil {
		return []string{fmt.Sprintf("%s: scaleTargetRef %+v is not a Deployment of the manifests", o, ref)}
	}
	return nil
}

// checkScaledObject ties the KEDA trigger to the code and the other
// manifests: the orders topic, the processor's group and brokers from the
// ConfigMap, and at most one replica per partition of the topics Job.
func (m *manifests) checkScaledObject(o *object, s scaledObjectSpec, c *cli) []string {
	problems := m.checkTarget(o, s.ScaleTargetRef)
	bad := func(format string, args ...any) {
		problems = append(problems, o.String()+": "+fmt.Sprintf(format, args...))
	}
	for _, h := range m.byKind["HorizontalPodAutoscaler"] {
		if spec, err := decodeSpec[hpaSpec](h); err == nil && spec.ScaleTargetRef.Name == s.ScaleTargetRef.Name {
			bad("HorizontalPodAutoscaler %s scales the same Deployment (KEDA creates its own)", h.Metadata.Name)
		}
	}
	cm := map[string]string{}
	for _, o := range m.byKind["ConfigMap"] {
		for k, v := range o.Data {
			cm[k] = v
		}
	}
	group := cm["ORDERFLOW_GROUP"]
	if group == "" {
		group = processor.DefaultConfig(topics.New("")).Group
	}
	names := topics.New(cm["ORDERFLOW_TOPIC_PREFIX"])
	partitions := topics.DefaultPartitions
	for _, j := range m.byKind["Job"] {
		spec, err := decodeSpec[jobSpec](j)
		if err != nil {
			continue
		}
		for _, ct := range spec.Template.Spec.Containers {
			if command, args, err := c.command(ct.Args); err == nil && command == "topics create" {
				flags, _ := c.effectiveFlags(j.String(), command, args)
				if n, err := strconv.Atoi(flags["partitions"]); err == nil {
					partitions = n
				}
			}
		}
	}
	if s.MaxReplicaCount != partitions {
		bad("maxReplicaCount %d, want the orders topic's partition count %d", s.MaxReplicaCount, partitions)
	}
	var kafka bool
	for _, tr := range s.Triggers {
		if tr.Type != "kafka" {
			continue
		}
		kafka = true
		md := tr.Metadata
		if md["topic"] != names.Orders {
			bad("kafka trigger topic %q, want %q", md["topic"], names.Orders)
		}
		if md["consumerGroup"] != group {
			bad("kafka trigger consumerGroup %q, want the processor's group %q", md["consumerGroup"], group)
		}
		if b := cm["ORDERFLOW_BROKERS"]; b != "" && md["bootstrapServers"] != b {
			bad("kafka trigger bootstrapServers %q, want ORDERFLOW_BROKERS %q", md["bootstrapServers"], b)
		}
		if n, err := strconv.Atoi(md["lagThreshold"]); err != nil || n < 1 {
			bad("kafka trigger lagThreshold %q: want a positive number", md["lagThreshold"])
		}
	}
	if !kafka {
		bad("no kafka trigger")
	}
	return problems
}

// kubeProbe is one HTTP probe of a Deployment, resolved to the command and
// the listener flag that serves it.
type kubeProbe struct {
	where   string
	command string
	flag    string
	port    int
	path    string
}

// deploymentProbes returns every HTTP probe of the Deployments.
func deploymentProbes(t *testing.T) []kubeProbe {
	t.Helper()
	c := binaryCLI(t)
	objs, err := loadObjects(kubernetesDir)
	if err != nil {
		t.Fatal(err)
	}
	var out []kubeProbe
	for _, o := range objs {
		if o.Kind != "Deployment" {
			continue
		}
		spec, err := decodeSpec[deploymentSpec](o)
		if err != nil {
			t.Fatal(err)
		}
		for _, ct := range spec.Template.Spec.Containers {
			command, args, err := c.command(ct.Args)
			if err != nil {
				t.Fatalf("%s: %v", o, err)
			}
			flags, _ := c.effectiveFlags(o.String(), command, args)
			for kind, p := range map[string]*probeSpec{"readinessProbe": ct.ReadinessProbe, "livenessProbe": ct.LivenessProbe, "startupProbe": ct.StartupProbe} {
				if p == nil || p.HTTPGet == nil {
					continue
				}
				port, flag, err := probeListener(ct, flags, p.HTTPGet.Port)
				if err != nil {
					t.Fatalf("%s %s: %v", o, kind, err)
				}
				out = append(out, kubeProbe{where: o.String() + " " + kind, command: command, flag: flag, port: port, path: p.HTTPGet.Path})
			}
		}
	}
	if len(out) == 0 {
		t.Fatal("no Deployment has an HTTP probe")
	}
	return out
}

func TestKubernetesManifests(t *testing.T) {
	objs, err := loadObjects(kubernetesDir)
	if err != nil {
		t.Fatal(err)
	}
	m := newManifests(objs)
	for _, p := range m.check(binaryCLI(t)) {
		t.Error(p)
	}
	// What the deployment needs, by kind and name.
	for _, want := range []struct{ kind, name string }{
		{"Deployment", "orderflow-gateway"}, {"Deployment", "orderflow-processor"},
		{"Service", "orderflow-gateway"}, {"HorizontalPodAutoscaler", "orderflow-gateway"},
		{"ScaledObject", "orderflow-processor"}, {"Job", "orderflow-topics"},
		{"ConfigMap", "orderflow"}, {"Secret", "orderflow-gateway"}, {"Secret", "orderflow-providers"},
	} {
		if m.byKind[want.kind][want.name] == nil {
			t.Errorf("no %s %s", want.kind, want.name)
		}
	}
	if len(m.byKind["PodDisruptionBudget"]) == 0 {
		t.Error("no PodDisruptionBudget")
	}
}

func TestKustomizationListsEveryManifest(t *testing.T) {
	b, err := os.ReadFile(filepath.Join(kubernetesDir, "kustomization.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var k struct {
		APIVersion string   `yaml:"apiVersion"`
		Kind       string   `yaml:"kind"`
		Namespace  string   `yaml:"namespace"`
		Resources  []string `yaml:"resources"`
		Images     []struct {
			Name string `yaml:"name"`
		} `yaml:"images"`
	}
	if err := yaml.Unmarshal(b, &k); err != nil {
		t.Fatal(err)
	}
	if k.Kind != "Kustomization" || k.APIVersion != "kustomize.config.k8s.io/v1beta1" {
		t.Errorf("kustomization.yaml: kind %q apiVersion %q", k.Kind, k.APIVersion)
	}
	if k.Namespace != "" {
		t.Errorf("kustomization.yaml sets namespace %q; choose it when applying", k.Namespace)
	}
	files, _ := filepath.Glob(filepath.Join(kubernetesDir, "*.yaml"))
	var want []string
	for _, f := range files {
		if b := filepath.Base(f); b != "kustomization.yaml" {
			want = append(want, b)
		}
	}
	got := slices.Clone(k.Resources)
	sort.Strings(got)
	if !slices.Equal(got, want) {
		t.Errorf("kustomization resources %v, want every manifest of the folder %v", got, want)
	}
	objs, err := loadObjects(kubernetesDir)
	if err != nil {
		t.Fatal(err)
	}
	for _, o := range objs {
		var pods []podSpec
		switch o.Kind {
		case "Deployment":
			s, _ := decodeSpec[deploymentSpec](o)
			pods = append(pods, s.Template.Spec)
		case "Job":
			s, _ := decodeSpec[jobSpec](o)
			pods = append(pods, s.Template.Spec)
		}
		for _, p := range pods {
			for _, ct := range p.Containers {
				if !slices.ContainsFunc(k.Images, func(im struct {
					Name string `yaml:"name"`
				}) bool {
					return im.Name == ct.Image
				}) {
					t.Errorf("%s: image %q is not set by the kustomization's images", o, ct.Image)
				}
			}
		}
	}
}

// TestManifestChecker proves the checks catch what they are there for.
func TestManifestChecker(t *testing.T) {
	c := binaryCLI(t)
	base, err := loadObjects(kubernetesDir)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		file   string // the manifest file to change
		old    string
		new    string
		expect string
	}{
		{"selector does not match the template", "gateway-deployment.yaml", "      app.kubernetes.io/component: gateway\n  strategy", "      app.kubernetes.io/component: gw\n  strategy", "spec.selector.matchLabels"},
		{"probe on a port nothing listens on", "processor-deployment.yaml", "containerPort: 9090", "containerPort: 9191", "no --*-addr listener"},
		{"missing readiness probe", "gateway-deployment.yaml", "readinessProbe:", "readinessProbeX:", "needs an HTTP readinessProbe"},
		{"unknown flag", "gateway-deployment.yaml", "--shutdown-timeout=30s", "--shutdown-deadline=30s", "has no flag --shutdown-deadline"},
		{"grace shorter than the drain", "processor-deployment.yaml", "terminationGracePeriodSeconds: 90", "terminationGracePeriodSeconds: 30", "must exceed"},
		{"writable root fs", "gateway-deployment.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false", "readOnlyRootFilesystem"},
		{"service selects nothing", "gateway-service.yaml", "component: gateway\n  ports", "component: gatewy\n  ports", "selects no Deployment"},
		{"scaled object beyond the partitions", "keda-scaledobject.yaml", "maxReplicaCount: 12", "maxReplicaCount: 24", "partition count 12"},
		{"scaled object on another group", "keda-scaledobject.yaml", "consumerGroup: orderflow-processor", "consumerGroup: processors", "consumerGroup"},
		{"hpa on a missing deployment", "gateway-hpa.yaml", "name: orderflow-gateway\n  minReplicas", "name: gateway\n  minReplicas", "scaleTargetRef"},
		{"config key no command reads", "configmap.yaml", "ORDERFLOW_LOG_LEVEL:", "ORDERFLOW_LOGLEVEL:", "ORDERFLOW_LOGLEVEL is not read"},
		{"namespace set", "serviceaccount.yaml", "  name: orderflow\n", "  name: orderflow\n  namespace: prod\n", "namespace-agnostic"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			files, _ := filepath.Glob(filepath.Join(kubernetesDir, "*.yaml"))
			for _, f := range files {
				b, err := os.ReadFile(f)
				if err != nil {
					t.Fatal(err)
				}
				if filepath.Base(f) == tt.file {
					if !bytes.Contains(b, []byte(tt.old)) {
						t.Fatalf("%s does not contain %q", tt.file, tt.old)
					}
					b = bytes.Replace(b, []byte(tt.old), []byte(tt.new), 1)
				}
				if err := os.WriteFile(filepath.Join(dir, filepath.Base(f)), b, 0o600); err != nil {
					t.Fatal(err)
				}
			}
			objs, err := loadObjects(dir)
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) != len(base) {
				t.Fatalf("%d objects, want %d", len(objs), len(base))
			}
			problems := newManifests(objs).check(c)
			if !slices.ContainsFunc(problems, func(p string) bool { return strings.Contains(p, tt.expect) }) {
				t.Errorf("problems %v, want one containing %q", problems, tt.expect)
			}
		})
	}
}
