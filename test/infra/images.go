package infra

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Local images. No registry is needed: the base is a Debian root made by
// debootstrap from the Debian mirror apt uses, and every other image is
// built on it from Debian packages, the Kafka jars test/infra resolves from
// Maven Central, the stripe-mock it builds and the host's Go toolchain.
// Each tag carries a key of its inputs (Dockerfile text, file contents or
// versions), so a changed input builds a new image and an unchanged one is
// reused; older tags of the same image are removed.
const (
	ImageRepo    = "orderflow-test/"
	DebianSuite  = "bookworm"
	BuildTimeout = 10 * time.Minute // one image build
	// OrderflowBuildTimeout bounds the Dockerfile's build: a cold Go build
	// of the whole binary on a busy two-core machine.
	OrderflowBuildTimeout = 25 * time.Minute
	DebootstrapMax        = 5 * time.Minute
)

// The Dockerfiles of the local images. FROM lines name other local
// images by role; BuildImage substitutes their tags.
const (
	jreDockerfile = `FROM {{base}}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends openjdk-17-jre-headless >/dev/null && rm -rf /var/lib/apt/lists/*
`
	kafkaDockerfile = `FROM {{jre}}
COPY libs /opt/kafka/libs
COPY kafka-start.sh /opt/kafka/kafka-start.sh
COPY log4j2.xml /opt/kafka/log4j2.xml
RUN chmod 0755 /opt/kafka/kafka-start.sh && mkdir -p /var/lib/kafka/data
ENTRYPOINT ["/opt/kafka/kafka-start.sh"]
`
	redisDockerfile = `FROM {{base}}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends redis-server >/dev/null && rm -rf /var/lib/apt/lists/*
ENTRYPOINT ["/usr/bin/redis-server"]
`
	stripeMockDockerfile = `FROM {{base}}
COPY stripe-mock /usr/local/bin/stripe-mock
ENTRYPOINT ["/usr/local/bin/stripe-mock"]
`
	// The Go builder stage's local substitute: the host's toolchain, and
	// the host's CA bundle (go mod download trusts what the host trusts,
	// such as a proxy's CA).
	goDockerfile = `FROM {{base}}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates git >/dev/null && rm -rf /var/lib/apt/lists/*
COPY go /usr/local/go
COPY ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
ENV PATH=/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin GOTOOLCHAIN=local
`
	// distroless/static's local substitute: CA certificates and the
	// nonroot user (65532).
	runtimeDockerfile = `FROM {{base}}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends ca-certificates >/dev/null && rm -rf /var/lib/apt/lists/* \
 && echo 'nonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin' >> /etc/passwd \
 && echo 'nonroot:x:65532:' >> /etc/group && mkdir -p /home/nonroot && chown 65532:65532 /home/nonroot
USER 65532:65532
`
	// distroless/static:debug-nonroot's: busybox under /busybox.
	runtimeDebugDockerfile = `FROM {{runtime}}
USER 0
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends busybox-static >/dev/null && rm -rf /var/lib/apt/lists/* \
 && mkdir /busybox && for a in sh wget; do ln -s /bin/busybox /busybox/$a; done
USER 65532:65532
`
	prometheusDockerfile = `FROM {{base}}
RUN apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends prometheus wget >/dev/null && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus && chown prometheus /prometheus
USER prometheus
ENTRYPOINT ["/usr/bin/prometheus"]
`
)

// kafkaStartScript runs inside the Kafka image: it writes the broker's
// configuration from the environment (the same settings the process path
// uses), formats the storage on first start and runs the broker.
var kafkaStartScript = `#!/bin/sh
set -e
: "${KAFKA_PORT:=9092}" "${KAFKA_CONTROLLER_PORT:=9093}" "${KAFKA_ADVERTISED_HOST:=127.0.0.1}"
: "${KAFKA_DATA:=/var/lib/kafka/data}" "${KAFKA_CLUSTER_ID:=guGZKfiMT2i5Ekoj28yCPA}" "${KAFKA_HEAP:=-Xmx768m -Xms256m}"
conf=/tmp/server.properties
cat > "$conf" <<EOF
` + kafkaProps("${KAFKA_ADVERTISED_HOST}", "${KAFKA_PORT}", "${KAFKA_CONTROLLER_PORT}", "${KAFKA_DATA}") + `EOF
cp='/opt/kafka/libs/*'
log='-Dlog4j2.configurationFile=/opt/kafka/log4j2.xml'
if [ ! -f "$KAFKA_DATA/meta.properties" ]; then
  java -Xmx256m "$log" -cp "$cp" kafka.tools.StorageTool format -t "$KAFKA_CLUSTER_ID" -c "$conf"
fi
exec java $KAFKA_HEAP -XX:+UseSerialGC "$log" -cp "$cp" kafka.Kafka "$conf"
`

// log4j2 for the container: warnings to stdout (docker logs).
const kafkaContainerLog4j = `<?xml version="1.0" encoding="UTF-8"?>
<Configuration status="WARN">
  <Appenders><Console name="out" target="SYSTEM_OUT"><PatternLayout pattern="[%d] %p %m (%c)%n"/></Console></Appenders>
  <Loggers><Root level="WARN"><AppenderRef ref="out"/></Root></Loggers>
</Configuration>
`

// Images are the local image tags.
type Images struct {
	Base, JRE, Kafka, Redis, StripeMock string
}

// buildSpec is one local image.
type buildSpec struct {
	name       string
	dockerfile string
	// files: context path -> host path (file or directory), linked or
	// copied into a temporary context.
	files map[string]string
	// inline: context path -> content.
	inline map[string]string
	// key: extra inputs that stand for files too big to hash every run
	// (a directory's versioned name). Files not listed here are hashed.
	key []string
	// keyed: host paths whose contents are not hashed (key stands for them).
	keyed map[string]bool
}

// BaseImage returns the Debian base image, making it with debootstrap
// (minbase) and docker import when its tag is missing.
func (e *Engine) BaseImage(ctx context.Context, logf func(string, ...any)) (string, error) {
	mirror := debianMirror()
	tag := ImageRepo + "debian:" + DebianSuite + "-" + hashKey([]byte(DebianSuite), []byte("minbase"), []byte(mirror), []byte(runtime.GOARCH))
	if e.hasImage(ctx, tag) {
		return tag, nil
	}
	if _, err := lookPath("debootstrap"); err != nil {
		return "", fmt.Errorf("the base image %s is missing and debootstrap is not installed", tag)
	}
	logf("infra: making the Debian %s base image with debootstrap (once)", DebianSuite)
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	root, err := os.MkdirTemp(cache, "rootfs-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(root)
	dctx, cancel := context.WithTimeout(ctx, DebootstrapMax)
	defer cancel()
	if _, err := run(dctx, "", nil, "debootstrap", "--variant=minbase", DebianSuite, root, mirror); err != nil {
		return "", fmt.Errorf("debootstrap (bounded at %s): %w", DebootstrapMax, err)
	}
	// The mirror debootstrap used, with security updates, for apt in the
	// images built on this one.
	sources := fmt.Sprintf("deb %s %s main\ndeb %s %s-updates main\n", mirror, DebianSuite, mirror, DebianSuite)
	if err := os.WriteFile(filepath.Join(root, "etc/apt/sources.list"), []byte(sources), 0o644); err != nil {
		return "", err
	}
	ictx, cancel2 := context.WithTimeout(ctx, BuildTimeout)
	defer cancel2()
	if _, err := run(ictx, "", []string{"DOCKER_HOST=" + e.Host}, "sh", "-c",
		`tar -C "$1" -c . | "$2" import --change 'CMD ["/bin/bash"]' - "$3"`, "import", root, e.CLI, tag); err != nil {
		return "", fmt.Errorf("docker import: %w", err)
	}
	e.removeOtherTags(ctx, tag)
	return tag, nil
}

// debianMirror is the first Debian mirror apt is configured with.
func debianMirror() string {
	for _, f := range []string{"/etc/apt/sources.list.d/debian.sources", "/etc/apt/sources.list"} {
		fh, err := os.Open(f)
		if err != nil {
			continue
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			line := strings.TrimSpace(sc.Text())
			var uri string
			if v, ok := strings.CutPrefix(line, "URIs:"); ok {
				uri = strings.Fields(v + " x")[0]
			} else if f := strings.Fields(line); len(f) >= 3 && f[0] == "deb" {
				uri = f[1]
				if strings.HasPrefix(uri, "[") {
					uri = f[2]
				}
			}
			if strings.HasSuffix(strings.TrimRight(uri, "/"), "/debian") {
				fh.Close()
				return strings.TrimRight(uri, "/")
			}
		}
		fh.Close()
	}
	return "http://deb.debian.org/debian"
}

func (e *Engine) hasImage(ctx context.Context, tag string) bool {
	_, err := e.Docker(ctx, "image", "inspect", "--format", "{{.Id}}", tag)
	return err == nil
}

// removeOtherTags removes the other tags of tag's repository (images of
// inputs that have changed).
func (e *Engine) removeOtherTags(ctx context.Context, tag string) {
	repo, _, _ := strings.Cut(tag, ":")
	out, err := e.Docker(ctx, "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", repo)
	if err != nil {
		return
	}
	for _, t := range strings.Fields(string(out)) {
		if t != tag {
			_, _ = e.Docker(ctx, "image", "rm", t)
		}
	}
}

// build builds spec unless an image with the same inputs exists. roles
// maps {{role}} placeholders in the Dockerfile to image tags.
func (e *Engine) build(ctx context.Context, spec buildSpec, roles map[string]string, logf func(string, ...any)) (string, error) {
	df := spec.dockerfile
	for role, tag := range roles {
		df = strings.ReplaceAll(df, "{{"+role+"}}", tag)
	}
	parts := [][]byte{[]byte(df)}
	parts = append(parts, []byte(strings.Join(spec.key, "\n")))
	for _, k := range sortedKeys(spec.inline) {
		parts = append(parts, []byte(k), []byte(spec.inline[k]))
	}
	for _, k := range sortedKeys(spec.files) {
		parts = append(parts, []byte(k))
		if spec.keyed[spec.files[k]] {
			continue
		}
		b, err := os.ReadFile(spec.files[k])
		if err != nil {
			return "", err
		}
		parts = append(parts, b)
	}
	tag := ImageRepo + spec.name + ":" + hashKey(parts...)
	if e.hasImage(ctx, tag) {
		return tag, nil
	}
	logf("infra: building image %s", tag)
	cache, err := CacheDir()
	if err != nil {
		return "", err
	}
	bctx, err := os.MkdirTemp(cache, "context-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(bctx)
	for dst, src := range spec.files {
		if err := linkTree(src, filepath.Join(bctx, dst)); err != nil {
			return "", err
		}
	}
	for dst, body := range spec.inline {
		if err := os.WriteFile(filepath.Join(bctx, dst), []byte(body), 0o644); err != nil {
			return "", err
		}
	}
	if err := os.WriteFile(filepath.Join(bctx, "Dockerfile"), []byte(df), 0o644); err != nil {
		return "", err
	}
	tctx, cancel := context.WithTimeout(ctx, BuildTimeout)
	defer cancel()
	if _, err := e.Docker(tctx, "build", "--network", "host", "-q", "-t", tag, bctx); err != nil {
		if tctx.Err() != nil {
			return "", fmt.Errorf("build %s: not done within %s: %w", tag, BuildTimeout, err)
		}
		return "", fmt.Errorf("build %s: %w", tag, err)
	}
	e.removeOtherTags(ctx, tag)
	return tag, nil
}

// ServerImages builds (or finds) the images of the test servers: Kafka
// (Debian's JRE and the broker jars in libs), Redis (Debian's
// redis-server) and stripe-mock (the binary stripeMock).
func (e *Engine) ServerImages(ctx context.Context, libs, stripeMock string, logf func(string, ...any)) (Images, error) {
	var im Images
	var err error
	if im.Base, err = e.BaseImage(ctx, logf); err != nil {
		return im, err
	}
	roles := map[string]string{"base": im.Base}
	// Sequential: the machine this runs on may have two cores.
	if im.JRE, err = e.build(ctx, buildSpec{name: "jre", dockerfile: jreDockerfile}, roles, logf); err != nil {
		return im, err
	}
	roles["jre"] = im.JRE
	jars, err := os.ReadDir(libs)
	if err != nil {
		return im, err
	}
	var names []string
	for _, j := range jars {
		names = append(names, j.Name())
	}
	if im.Kafka, err = e.build(ctx, buildSpec{
		name: "kafka", dockerfile: kafkaDockerfile,
		files:  map[string]string{"libs": libs},
		keyed:  map[string]bool{libs: true},
		key:    names, // versioned jar names stand for the jars
		inline: map[string]string{"kafka-start.sh": kafkaStartScript, "log4j2.xml": kafkaContainerLog4j},
	}, roles, logf); err != nil {
		return im, err
	}
	if im.Redis, err = e.build(ctx, buildSpec{name: "redis", dockerfile: redisDockerfile}, roles, logf); err != nil {
		return im, err
	}
	if im.StripeMock, err = e.build(ctx, buildSpec{
		name: "stripe-mock", dockerfile: stripeMockDockerfile,
		files: map[string]string{"stripe-mock": stripeMock},
	}, roles, logf); err != nil {
		return im, err
	}
	return im, nil
}

// BuildImages are the local substitutes of the Dockerfile's upstream
// bases, and Prometheus.
type BuildImages struct {
	Go, Runtime, RuntimeDebug, Prometheus string
}

// BuildBases builds (or finds) the local Go builder (the host's toolchain
// on the Debian base), the distroless substitutes and Prometheus (Debian's
// package).
func (e *Engine) BuildBases(ctx context.Context, logf func(string, ...any)) (BuildImages, error) {
	var b BuildImages
	base, err := e.BaseImage(ctx, logf)
	if err != nil {
		return b, err
	}
	goroot := runtime.GOROOT()
	if out, err := run(ctx, "", nil, "go", "env", "GOROOT"); err == nil {
		goroot = strings.TrimSpace(string(out))
	}
	ver, err := os.ReadFile(filepath.Join(goroot, "VERSION"))
	if err != nil {
		return b, fmt.Errorf("Go toolchain: %w", err)
	}
	roles := map[string]string{"base": base}
	if b.Go, err = e.build(ctx, buildSpec{
		name: "go", dockerfile: goDockerfile,
		files: map[string]string{"go": goroot, "ca-certificates.crt": hostCABundle()}, keyed: map[string]bool{goroot: true},
		key: []string{strings.SplitN(string(ver), "\n", 2)[0], runtime.GOARCH},
	}, roles, logf); err != nil {
		return b, err
	}
	if b.Runtime, err = e.build(ctx, buildSpec{name: "runtime", dockerfile: runtimeDockerfile}, roles, logf); err != nil {
		return b, err
	}
	roles["runtime"] = b.Runtime
	if b.RuntimeDebug, err = e.build(ctx, buildSpec{name: "runtime-debug", dockerfile: runtimeDebugDockerfile}, roles, logf); err != nil {
		return b, err
	}
	if b.Prometheus, err = e.build(ctx, buildSpec{name: "prometheus", dockerfile: prometheusDockerfile}, roles, logf); err != nil {
		return b, err
	}
	return b, nil
}

// OrderflowImage builds the project's Dockerfile (repository root root)
// for target ("" = the default image, "debug") with the local bases, and
// tags it orderflow-test/orderflow:<target>. BuildKit's cache keys the
// build on its inputs: an unchanged tree rebuilds nothing.
func (e *Engine) OrderflowImage(ctx context.Context, root, target string, b BuildImages) (string, error) {
	name := target
	if name == "" {
		name = "latest"
	}
	tag := ImageRepo + "orderflow:" + name
	args := []string{"build", "--network", "host", "-q", "-t", tag,
		"--build-arg", "GO_IMAGE=" + b.Go,
		"--build-arg", "RUNTIME_IMAGE=" + b.Runtime,
		"--build-arg", "DEBUG_IMAGE=" + b.RuntimeDebug,
	}
	if p := os.Getenv("GOPROXY"); p != "" {
		args = append(args, "--build-arg", "GOPROXY="+p)
	}
	if target != "" {
		args = append(args, "--target", target)
	}
	tctx, cancel := context.WithTimeout(ctx, OrderflowBuildTimeout)
	defer cancel()
	if _, err := e.Docker(tctx, append(args, root)...); err != nil {
		if tctx.Err() != nil {
			return "", fmt.Errorf("build %s: not done within %s: %w", tag, OrderflowBuildTimeout, err)
		}
		return "", fmt.Errorf("build %s: %w", tag, err)
	}
	return tag, nil
}

// hostCABundle is the host's CA bundle (Debian's path, else Go's choice
// of the system roots' file).
func hostCABundle() string {
	for _, f := range []string{"/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"} {
		if _, err := os.Stat(f); err == nil {
			return f
		}
	}
	return "/etc/ssl/certs/ca-certificates.crt"
}

// EngineFromEnv is the engine DOCKER_HOST names (set by `infra run` when
// it used Docker), or an error when it is unset or does not answer.
func EngineFromEnv(ctx context.Context) (*Engine, error) {
	host := os.Getenv("DOCKER_HOST")
	if host == "" {
		if _, err := os.Stat("/var/run/docker.sock"); err != nil {
			return nil, fmt.Errorf("DOCKER_HOST is unset and /var/run/docker.sock does not exist")
		}
		host = "unix:///var/run/docker.sock"
	}
	cli, err := dockerCLI()
	if err != nil {
		return nil, err
	}
	v, err := pingEngine(ctx, cli, host)
	if err != nil {
		return nil, fmt.Errorf("Docker engine at %s does not answer: %v", host, firstLine(err))
	}
	return &Engine{Host: host, CLI: cli, Version: v}, nil
}

// linkTree hard-links (or copies, across file systems) src into dst.
func linkTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		to := filepath.Join(dst, rel)
		info, err := d.Info()
		if err != nil {
			return err
		}
		switch {
		case d.IsDir():
			return os.MkdirAll(to, 0o755)
		case info.Mode()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			return os.Symlink(l, to)
		}
		if os.Link(p, to) == nil {
			return nil
		}
		return CopyFile(p, to, info.Mode().Perm())
	})
}

// CopyFile copies the file src to dst (created or truncated, with perm).
func CopyFile(src, dst string, perm fs.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return err
	}
	return out.Close()
}

func sortedKeys(m map[string]string) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
