package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"net/http"
	"net/http/pprof"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"

	"github.com/orderflow/orderflow/topics"
)

// kafkaFlags are the connection flags every Kafka-using command shares.
type kafkaFlags struct {
	brokers      string
	prefix       string
	tls          bool
	tlsCA        string
	saslMech     string
	saslUser     string
	saslPassFile string
}

func (k *kafkaFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&k.brokers, "brokers", "127.0.0.1:9092", "Kafka bootstrap brokers, comma-separated")
	fs.StringVar(&k.prefix, "topic-prefix", "", "prefix of every topic name (\"shop1.\" gives shop1.orders)")
	fs.BoolVar(&k.tls, "kafka-tls", false, "connect to Kafka over TLS")
	fs.StringVar(&k.tlsCA, "kafka-tls-ca", "", "PEM file of CAs to trust for Kafka TLS (default: system roots)")
	fs.StringVar(&k.saslMech, "kafka-sasl-mechanism", "", "SASL mechanism: PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512 (empty: no SASL)")
	fs.StringVar(&k.saslUser, "kafka-sasl-user", "", "SASL user name")
	fs.StringVar(&k.saslPassFile, "kafka-sasl-password-file", "", "file holding the SASL password (or set ORDERFLOW_KAFKA_SASL_PASSWORD)")
}

func (k *kafkaFlags) names() topics.Names { return topics.New(k.prefix) }

func (k *kafkaFlags) seeds() ([]string, error) {
	s := splitList(k.brokers)
	if len(s) == 0 {
		return nil, usagef("--brokers is empty")
	}
	return s, nil
}

// opts returns the client options for the connection flags.
func (k *kafkaFlags) opts() ([]kgo.Opt, error) {
	seeds, err := k.seeds()
	if err != nil {
		return nil, err
	}
	opts := []kgo.Opt{kgo.SeedBrokers(seeds...)}
	if k.tls || k.tlsCA != "" {
		cfg, err := tlsConfig(k.tlsCA)
		if err != nil {
			return nil, usagef("--kafka-tls-ca: %v", err)
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	}
	if k.saslMech != "" {
		pass, err := secretFromFileOrEnv(k.saslPassFile, "ORDERFLOW_KAFKA_SASL_PASSWORD")
		if err != nil {
			return nil, usagef("--kafka-sasl-password-file: %v", err)
		}
		switch strings.ToUpper(k.saslMech) {
		case "PLAIN":
			opts = append(opts, kgo.SASL(plain.Auth{User: k.saslUser, Pass: pass}.AsMechanism()))
		case "SCRAM-SHA-256":
			opts = append(opts, kgo.SASL(scram.Auth{User: k.saslUser, Pass: pass}.AsSha256Mechanism()))
		case "SCRAM-SHA-512":
			opts = append(opts, kgo.SASL(scram.Auth{User: k.saslUser, Pass: pass}.AsSha512Mechanism()))
		default:
			return nil, usagef("--kafka-sasl-mechanism %q: want PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512", k.saslMech)
		}
	}
	return opts, nil
}

// tlsConfig is a TLS 1.2+ client configuration trusting the CAs in caFile,
// or the system roots when caFile is empty.
func tlsConfig(caFile string) (*tls.Config, error) {
	cfg := &tls.Config{MinVersion: tls.VersionTLS12}
	if caFile == "" {
		return cfg, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("no PEM certificate in %s", caFile)
	}
	cfg.RootCAs = pool
	return cfg, nil
}

// secretFromFileOrEnv reads a secret from a file (trailing newline removed)
// or, when no file is named, from an environment variable.
func secretFromFileOrEnv(file, env string) (string, error) {
	if file == "" {
		return os.Getenv(env), nil
	}
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("read secret: %w", err)
	}
	return strings.TrimRight(string(b), "\r\n"), nil
}

// servePprof adds Go's profiler to a metrics listener (--pprof): never on
// the webhook listener.
func servePprof(mux *http.ServeMux) {
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
}
