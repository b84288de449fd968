// Assertions on one rendered scenario. Every function appends human-readable problems to a
// report; none stops at the first one, so a CI log shows everything that is wrong at once.
//
// What a correct render looks like (issue "Ship it", CONTRACT §8-§9):
//   - one workload: a Deployment (standalone, 1 replica, Recreate) or a StatefulSet
//     (replicated), with one container "storage-element";
//   - container port "https" = 8010 = SE_PORT; liveness GET /health/live, readiness and
//     startup GET /health/ready, all over HTTPS on that port;
//   - pod: runAsNonRoot with a non-zero uid, fsGroup, seccomp RuntimeDefault; container:
//     no privilege escalation, not privileged, read-only root, all capabilities dropped;
//   - resources requested, memory limited; grace period longer than SE_SHUTDOWN_TIMEOUT;
//   - SE_DATA_DIR and SE_WAL_DIR are mount paths of the data and WAL volumes; every file
//     named by SE_TLS_CERT, SE_TLS_KEY, SE_JWKS_CA_CERT, SE_PEER_CA_CERT lies in a
//     read-only Secret mount without subPath (so renewals reach the running pod);
//   - standalone: data and WAL are two different ReadWriteOnce claims;
//   - replicated: data is one rendered ReadWriteMany claim, WAL is a per-pod
//     volumeClaimTemplate, the StatefulSet's serviceName is a rendered headless Service and
//     SE_ADVERTISE_ADDR is $(POD_NAME).<headless>.<namespace>.svc.<domain>:8010;
//   - every selector (Service, PDB, ServiceMonitor) selects the pods; every reference
//     (Ingress, HTTPRoute, BackendTLSPolicy, ServiceMonitor, Certificate) names a rendered
//     object and an existing port.
package main

import (
	"fmt"
	"slices"
	"strings"
	"time"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	monv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
)

const (
	sePort            = 8010
	containerName     = "storage-element"
	defaultShutdown   = 30 * time.Second
	livePath          = "/health/live"
	readyPath         = "/health/ready"
	metricsPath       = "/metrics"
	podNameHelper     = "POD_NAME"
	clusterDomainWant = "cluster.local"
)

// fileVars are the variables that name files the SE reads (and reloads).
var fileVars = []string{"SE_TLS_CERT", "SE_TLS_KEY", "SE_JWKS_CA_CERT", "SE_PEER_CA_CERT"}

type report struct{ problems []string }

func (r *report) fail(format string, a ...any) {
	r.problems = append(r.problems, fmt.Sprintf(format, a...))
}

// objects indexes a render's decoded objects.
type objects []decoded

func ofType[T any](objs objects) []T {
	var out []T
	for _, d := range objs {
		if t, ok := d.obj.(T); ok {
			out = append(out, t)
		}
	}
	return out
}

// workload is the pod-owning object, whichever kind it is.
type workload struct {
	kind     string
	name     string
	selector *metav1.LabelSelector
	pod      *corev1.PodTemplateSpec
}

func findWorkload(objs objects, r *report) *workload {
	deps := ofType[*appsv1.Deployment](objs)
	sts := ofType[*appsv1.StatefulSet](objs)
	if len(deps)+len(sts) != 1 {
		r.fail("want exactly one workload, have %d Deployment(s) and %d StatefulSet(s)", len(deps), len(sts))
		return nil
	}
	if len(deps) == 1 {
		d := deps[0]
		return &workload{kind: "Deployment", name: d.Name, selector: d.Spec.Selector, pod: &d.Spec.Template}
	}
	s := sts[0]
	return &workload{kind: "StatefulSet", name: s.Name, selector: s.Spec.Selector, pod: &s.Spec.Template}
}

// envMap returns the container's env as name -> entry, and the names in order.
func envMap(c *corev1.Container) (map[string]corev1.EnvVar, []string) {
	m := map[string]corev1.EnvVar{}
	var order []string
	for _, e := range c.Env {
		m[e.Name] = e
		order = append(order, e.Name)
	}
	return m, order
}

func seContainer(w *workload, r *report) *corev1.Container {
	cs := w.pod.Spec.Containers
	if len(cs) != 1 || cs[0].Name != containerName {
		r.fail("%s: want one container %q, have %d", w.name, containerName, len(cs))
		return nil
	}
	if len(w.pod.Spec.InitContainers) > 0 {
		r.fail("%s: unexpected init containers", w.name)
	}
	return &cs[0]
}

func checkSelector(what string, sel *metav1.LabelSelector, podLabels map[string]string, r *report) {
	if sel == nil || (len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0) {
		r.fail("%s: empty selector (would select everything)", what)
		return
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		r.fail("%s: selector: %v", what, err)
		return
	}
	if !s.Matches(labels.Set(podLabels)) {
		r.fail("%s: selector %v does not select the pods (labels %v)", what, s, podLabels)
	}
}

func checkPortAndProbes(c *corev1.Container, env map[string]corev1.EnvVar, r *report) {
	port := int32(0)
	for _, p := range c.Ports {
		if p.Name == "https" {
			port = p.ContainerPort
		}
	}
	if port != sePort {
		r.fail("container port https = %d, want %d", port, sePort)
	}
	if v := env["SE_PORT"].Value; v != fmt.Sprint(sePort) {
		r.fail("SE_PORT = %q, want %d", v, sePort)
	}
	probes := []struct {
		name  string
		probe *corev1.Probe
		path  string
	}{
		{"liveness", c.LivenessProbe, livePath},
		{"readiness", c.ReadinessProbe, readyPath},
		{"startup", c.StartupProbe, readyPath},
	}
	for _, p := range probes {
		if p.probe == nil || p.probe.HTTPGet == nil {
			r.fail("%s probe: missing or not httpGet", p.name)
			continue
		}
		g := p.probe.HTTPGet
		if g.Path != p.path {
			r.fail("%s probe path %q, want %q", p.name, g.Path, p.path)
		}
		if g.Scheme != corev1.URISchemeHTTPS {
			r.fail("%s probe scheme %q, want HTTPS", p.name, g.Scheme)
		}
		if got := resolvePort(g.Port, c.Ports); got != sePort {
			r.fail("%s probe port %s resolves to %d, want %d", p.name, g.Port.String(), got, sePort)
		}
	}
}

func resolvePort(p intstr.IntOrString, ports []corev1.ContainerPort) int32 {
	if p.Type == intstr.Int {
		return p.IntVal
	}
	for _, cp := range ports {
		if cp.Name == p.StrVal {
			return cp.ContainerPort
		}
	}
	return 0
}

func checkSecurity(w *workload, c *corev1.Container, r *report) {
	ps := w.pod.Spec.SecurityContext
	switch {
	case ps == nil:
		r.fail("pod securityContext missing")
	default:
		if ps.RunAsNonRoot == nil || !*ps.RunAsNonRoot {
			r.fail("pod securityContext.runAsNonRoot is not true")
		}
		if ps.RunAsUser == nil || *ps.RunAsUser == 0 {
			r.fail("pod securityContext.runAsUser must be a non-zero uid")
		}
		if ps.FSGroup == nil {
			r.fail("pod securityContext.fsGroup missing (volumes would not be writable)")
		}
		if ps.SeccompProfile == nil || ps.SeccompProfile.Type != corev1.SeccompProfileTypeRuntimeDefault {
			r.fail("pod seccompProfile is not RuntimeDefault")
		}
	}
	cs := c.SecurityContext
	if cs == nil {
		r.fail("container securityContext missing")
		return
	}
	if cs.AllowPrivilegeEscalation == nil || *cs.AllowPrivilegeEscalation {
		r.fail("container allowPrivilegeEscalation is not false")
	}
	if cs.Privileged != nil && *cs.Privileged {
		r.fail("container is privileged")
	}
	if cs.ReadOnlyRootFilesystem == nil || !*cs.ReadOnlyRootFilesystem {
		r.fail("container readOnlyRootFilesystem is not true")
	}
	if cs.RunAsNonRoot == nil || !*cs.RunAsNonRoot {
		r.fail("container runAsNonRoot is not true")
	}
	if cs.Capabilities == nil || !slices.Contains(cs.Capabilities.Drop, "ALL") || len(cs.Capabilities.Add) > 0 {
		r.fail("container capabilities must drop ALL and add none")
	}
	if w.pod.Spec.HostNetwork || w.pod.Spec.HostPID || w.pod.Spec.HostIPC {
		r.fail("pod shares a host namespace")
	}
}

func checkResourcesAndShutdown(w *workload, c *corev1.Container, env map[string]corev1.EnvVar, r *report) {
	req := c.Resources.Requests
	if req.Cpu().IsZero() || req.Memory().IsZero() {
		r.fail("resources.requests must set cpu and memory")
	}
	if c.Resources.Limits.Memory().IsZero() {
		r.fail("resources.limits.memory missing")
	}
	shutdown := defaultShutdown
	if e, ok := env["SE_SHUTDOWN_TIMEOUT"]; ok {
		d, err := time.ParseDuration(e.Value)
		if err != nil {
			r.fail("SE_SHUTDOWN_TIMEOUT %q: %v", e.Value, err)
		}
		shutdown = d
	}
	grace := w.pod.Spec.TerminationGracePeriodSeconds
	if grace == nil || time.Duration(*grace)*time.Second <= shutdown {
		r.fail("terminationGracePeriodSeconds must exceed SE_SHUTDOWN_TIMEOUT (%s)", shutdown)
	}
}

// mountFor returns the mount whose path contains file, the longest match.
func mountFor(c *corev1.Container, file string) *corev1.VolumeMount {
	var best *corev1.VolumeMount
	for i := range c.VolumeMounts {
		m := &c.VolumeMounts[i]
		if file == m.MountPath || strings.HasPrefix(file, strings.TrimSuffix(m.MountPath, "/")+"/") {
			if best == nil || len(m.MountPath) > len(best.MountPath) {
				best = m
			}
		}
	}
	return best
}

func volumeByName(pod *corev1.PodSpec, name string) *corev1.Volume {
	for i := range pod.Volumes {
		if pod.Volumes[i].Name == name {
			return &pod.Volumes[i]
		}
	}
	return nil
}

func checkFiles(w *workload, c *corev1.Container, env map[string]corev1.EnvVar, r *report) {
	for _, name := range fileVars {
		e, ok := env[name]
		if !ok {
			continue
		}
		m := mountFor(c, e.Value)
		if m == nil {
			r.fail("%s=%s lies in no volume mount", name, e.Value)
			continue
		}
		if m.SubPath != "" || m.SubPathExpr != "" {
			r.fail("%s: mount %s uses subPath; Secret updates would not reach the pod", name, m.MountPath)
		}
		if !m.ReadOnly {
			r.fail("%s: mount %s is not read-only", name, m.MountPath)
		}
		v := volumeByName(&w.pod.Spec, m.Name)
		if v == nil || v.Secret == nil {
			r.fail("%s: volume %s is not a Secret", name, m.Name)
			continue
		}
		key := strings.TrimPrefix(strings.TrimPrefix(e.Value, m.MountPath), "/")
		if len(v.Secret.Items) > 0 && !slices.ContainsFunc(v.Secret.Items, func(it corev1.KeyToPath) bool { return it.Path == key }) {
			r.fail("%s: Secret volume %s does not project %s", name, m.Name, key)
		}
	}
}

// checkDirs verifies SE_DATA_DIR / SE_WAL_DIR are the mount paths of volumes "data" / "wal".
func checkDirs(c *corev1.Container, env map[string]corev1.EnvVar, r *report) {
	for _, d := range []struct{ env, volume string }{{"SE_DATA_DIR", "data"}, {"SE_WAL_DIR", "wal"}} {
		path := env[d.env].Value
		m := mountFor(c, path)
		if path == "" || m == nil || m.MountPath != path || m.Name != d.volume || m.ReadOnly {
			r.fail("%s=%q must be the writable mount path of volume %q", d.env, path, d.volume)
		}
	}
}

func pvcByName(objs objects, name string) *corev1.PersistentVolumeClaim {
	for _, p := range ofType[*corev1.PersistentVolumeClaim](objs) {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func checkStandalone(objs objects, w *workload, env map[string]corev1.EnvVar, r *report) {
	deps := ofType[*appsv1.Deployment](objs)
	if len(deps) != 1 {
		r.fail("standalone: want a Deployment")
		return
	}
	d := deps[0]
	if d.Spec.Replicas == nil || *d.Spec.Replicas != 1 {
		r.fail("standalone: Deployment replicas must be 1")
	}
	if d.Spec.Strategy.Type != appsv1.RecreateDeploymentStrategyType {
		r.fail("standalone: Deployment strategy must be Recreate (RWO claims, no leader lock)")
	}
	if v := env["SE_REPLICA_MODE"].Value; v != "standalone" {
		r.fail("standalone: SE_REPLICA_MODE = %q", v)
	}
	claims := map[string]string{}
	for _, vol := range []string{"data", "wal"} {
		v := volumeByName(&w.pod.Spec, vol)
		if v == nil || v.PersistentVolumeClaim == nil {
			r.fail("standalone: volume %q is not a PVC", vol)
			continue
		}
		claims[vol] = v.PersistentVolumeClaim.ClaimName
		pvc := pvcByName(objs, v.PersistentVolumeClaim.ClaimName)
		if pvc == nil {
			continue // existingClaim: nothing rendered to check
		}
		if !slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
			r.fail("standalone: claim %s access modes %v, want [ReadWriteOnce]", pvc.Name, pvc.Spec.AccessModes)
		}
	}
	if claims["data"] != "" && claims["data"] == claims["wal"] {
		r.fail("standalone: data and WAL share claim %s", claims["data"])
	}
}

func checkReplicated(objs objects, w *workload, env map[string]corev1.EnvVar, order []string, r *report) {
	sts := ofType[*appsv1.StatefulSet](objs)
	if len(sts) != 1 {
		r.fail("replicated: want a StatefulSet")
		return
	}
	s := sts[0]
	if s.Spec.Replicas == nil || *s.Spec.Replicas < 2 {
		r.fail("replicated: StatefulSet replicas must be at least 2")
	}
	if v := env["SE_REPLICA_MODE"].Value; v != "replicated" {
		r.fail("replicated: SE_REPLICA_MODE = %q", v)
	}

	// Shared data: one rendered ReadWriteMany claim.
	data := volumeByName(&s.Spec.Template.Spec, "data")
	if data == nil || data.PersistentVolumeClaim == nil {
		r.fail("replicated: pod volume data is not a PVC")
	} else if pvc := pvcByName(objs, data.PersistentVolumeClaim.ClaimName); pvc == nil {
		r.fail("replicated: data claim %s is not rendered", data.PersistentVolumeClaim.ClaimName)
	} else if !slices.Equal(pvc.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}) {
		r.fail("replicated: data claim %s access modes %v, want [ReadWriteMany]", pvc.Name, pvc.Spec.AccessModes)
	}

	// Per-pod WAL: a volumeClaimTemplate named wal, not a pod volume.
	if volumeByName(&s.Spec.Template.Spec, "wal") != nil {
		r.fail("replicated: wal must come from volumeClaimTemplates, not a shared pod volume")
	}
	walTpl := slices.IndexFunc(s.Spec.VolumeClaimTemplates, func(p corev1.PersistentVolumeClaim) bool { return p.Name == "wal" })
	if walTpl < 0 {
		r.fail("replicated: no volumeClaimTemplate named wal")
	} else {
		t := s.Spec.VolumeClaimTemplates[walTpl]
		if !slices.Equal(t.Spec.AccessModes, []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce}) {
			r.fail("replicated: wal template access modes %v, want [ReadWriteOnce]", t.Spec.AccessModes)
		}
		if t.Spec.Resources.Requests.Storage().IsZero() {
			r.fail("replicated: wal template requests no storage")
		}
	}

	// Headless Service for peer DNS.
	headless := serviceByName(objs, s.Spec.ServiceName)
	switch {
	case headless == nil:
		r.fail("replicated: serviceName %q is not a rendered Service", s.Spec.ServiceName)
	case headless.Spec.ClusterIP != corev1.ClusterIPNone:
		r.fail("replicated: Service %s is not headless", headless.Name)
	default:
		checkSelector("headless Service "+headless.Name, &metav1.LabelSelector{MatchLabels: headless.Spec.Selector}, w.pod.Labels, r)
		if !headless.Spec.PublishNotReadyAddresses {
			r.fail("replicated: headless Service should publish not-ready addresses (followers must reach a starting leader)")
		}
	}

	// SE_ADVERTISE_ADDR from the pod's stable DNS name.
	want := fmt.Sprintf("$(%s).%s.%s.svc.%s:%d", podNameHelper, s.Spec.ServiceName, releaseNamespace, clusterDomainWant, sePort)
	if got := env["SE_ADVERTISE_ADDR"].Value; got != want {
		r.fail("replicated: SE_ADVERTISE_ADDR = %q, want %q", got, want)
	}
	pod, ok := env[podNameHelper]
	if !ok || pod.ValueFrom == nil || pod.ValueFrom.FieldRef == nil || pod.ValueFrom.FieldRef.FieldPath != "metadata.name" {
		r.fail("replicated: %s must come from fieldRef metadata.name", podNameHelper)
	}
	if slices.Index(order, podNameHelper) > slices.Index(order, "SE_ADVERTISE_ADDR") {
		r.fail("replicated: %s must precede SE_ADVERTISE_ADDR for $(...) expansion", podNameHelper)
	}
	if _, ok := env["SE_PEER_CA_CERT"]; !ok {
		if e := env["SE_PEER_TLS_INSECURE_SKIP_VERIFY"]; e.Value != "true" {
			r.fail("replicated: followers have neither SE_PEER_CA_CERT nor SE_PEER_TLS_INSECURE_SKIP_VERIFY")
		}
	}
}

func serviceByName(objs objects, name string) *corev1.Service {
	for _, s := range ofType[*corev1.Service](objs) {
		if s.Name == name {
			return s
		}
	}
	return nil
}

// mainService is the non-headless Service.
func mainService(objs objects, r *report) *corev1.Service {
	var found []*corev1.Service
	for _, s := range ofType[*corev1.Service](objs) {
		if s.Spec.ClusterIP != corev1.ClusterIPNone {
			found = append(found, s)
		}
	}
	if len(found) != 1 {
		r.fail("want exactly one client Service, have %d", len(found))
		return nil
	}
	return found[0]
}

func servicePort(s *corev1.Service, name string) *corev1.ServicePort {
	for i := range s.Spec.Ports {
		if s.Spec.Ports[i].Name == name {
			return &s.Spec.Ports[i]
		}
	}
	return nil
}

func checkServices(objs objects, w *workload, r *report) *corev1.Service {
	for _, s := range ofType[*corev1.Service](objs) {
		checkSelector("Service "+s.Name, &metav1.LabelSelector{MatchLabels: s.Spec.Selector}, w.pod.Labels, r)
		p := servicePort(s, "https")
		if p == nil || p.Port != sePort || p.TargetPort.String() != "https" {
			r.fail("Service %s: want port https %d -> targetPort https", s.Name, sePort)
		}
	}
	return mainService(objs, r)
}

// checkOptional validates the optional objects against the Service, pods and TLS Secret.
func checkOptional(objs objects, w *workload, svc *corev1.Service, replicated bool, r *report) {
	for _, pdb := range ofType[*policyv1.PodDisruptionBudget](objs) {
		checkSelector("PodDisruptionBudget "+pdb.Name, pdb.Spec.Selector, w.pod.Labels, r)
		if (pdb.Spec.MinAvailable == nil) == (pdb.Spec.MaxUnavailable == nil) {
			r.fail("PodDisruptionBudget %s: set exactly one of minAvailable, maxUnavailable", pdb.Name)
		}
	}
	if svc == nil {
		return
	}
	for _, ing := range ofType[*networkingv1.Ingress](objs) {
		for _, rule := range ing.Spec.Rules {
			if rule.HTTP == nil {
				r.fail("Ingress %s: rule without http paths", ing.Name)
				continue
			}
			for _, p := range rule.HTTP.Paths {
				b := p.Backend.Service
				if b == nil || b.Name != svc.Name || servicePort(svc, b.Port.Name) == nil && b.Port.Number != sePort {
					r.fail("Ingress %s: path %s must reach Service %s port https", ing.Name, p.Path, svc.Name)
				}
			}
		}
	}
	for _, rt := range ofType[*gwv1.HTTPRoute](objs) {
		if len(rt.Spec.ParentRefs) == 0 {
			r.fail("HTTPRoute %s: no parentRefs", rt.Name)
		}
		for _, rule := range rt.Spec.Rules {
			for _, b := range rule.BackendRefs {
				if string(b.Name) != svc.Name || b.Port == nil || int32(*b.Port) != sePort {
					r.fail("HTTPRoute %s: backendRef must be Service %s port %d", rt.Name, svc.Name, sePort)
				}
			}
		}
	}
	for _, p := range ofType[*gwv1.BackendTLSPolicy](objs) {
		for _, t := range p.Spec.TargetRefs {
			if string(t.Kind) != "Service" || string(t.Name) != svc.Name {
				r.fail("BackendTLSPolicy %s: must target Service %s", p.Name, svc.Name)
			}
		}
		v := p.Spec.Validation
		if v.Hostname == "" || (len(v.CACertificateRefs) == 0 && v.WellKnownCACertificates == nil) {
			r.fail("BackendTLSPolicy %s: needs a hostname and a CA", p.Name)
		}
	}
	for _, sm := range ofType[*monv1.ServiceMonitor](objs) {
		checkServiceMonitor(objs, sm, svc, r)
	}
	tlsVol := volumeByName(&w.pod.Spec, "tls")
	for _, cert := range ofType[*cmv1.Certificate](objs) {
		if tlsVol == nil || tlsVol.Secret == nil || cert.Spec.SecretName != tlsVol.Secret.SecretName {
			r.fail("Certificate %s: secretName %s is not the pods' TLS Secret", cert.Name, cert.Spec.SecretName)
		}
		if !slices.Contains(cert.Spec.DNSNames, svc.Name+"."+releaseNamespace+".svc") {
			r.fail("Certificate %s: lacks the Service DNS name", cert.Name)
		}
		if replicated {
			sts := ofType[*appsv1.StatefulSet](objs)
			if len(sts) == 1 {
				want := fmt.Sprintf("*.%s.%s.svc.%s", sts[0].Spec.ServiceName, releaseNamespace, clusterDomainWant)
				if !slices.Contains(cert.Spec.DNSNames, want) {
					r.fail("Certificate %s: lacks %s (followers verify the leader by its pod name)", cert.Name, want)
				}
			}
		}
	}
}

func checkServiceMonitor(objs objects, sm *monv1.ServiceMonitor, svc *corev1.Service, r *report) {
	sel, err := metav1.LabelSelectorAsSelector(&sm.Spec.Selector)
	if err != nil {
		r.fail("ServiceMonitor %s: selector: %v", sm.Name, err)
		return
	}
	var selected []string
	for _, s := range ofType[*corev1.Service](objs) {
		if sel.Matches(labels.Set(s.Labels)) {
			selected = append(selected, s.Name)
		}
	}
	if !slices.Equal(selected, []string{svc.Name}) {
		r.fail("ServiceMonitor %s: selects Services %v, want only %s (each pod scraped once)", sm.Name, selected, svc.Name)
	}
	if len(sm.Spec.Endpoints) == 0 {
		r.fail("ServiceMonitor %s: no endpoints", sm.Name)
	}
	for _, ep := range sm.Spec.Endpoints {
		if servicePort(svc, ep.Port) == nil {
			r.fail("ServiceMonitor %s: port %q is not a port of %s", sm.Name, ep.Port, svc.Name)
		}
		if ep.Scheme == nil || !strings.EqualFold(string(*ep.Scheme), "https") {
			r.fail("ServiceMonitor %s: scheme must be https", sm.Name)
		}
		if ep.Path != metricsPath {
			r.fail("ServiceMonitor %s: path %q, want %s", sm.Name, ep.Path, metricsPath)
		}
	}
}

// checkRender runs every assertion on one render and returns the container env names.
func checkRender(objs objects, replicated bool, r *report) []string {
	w := findWorkload(objs, r)
	if w == nil {
		return nil
	}
	checkSelector(w.kind+" "+w.name, w.selector, w.pod.Labels, r)
	c := seContainer(w, r)
	if c == nil {
		return nil
	}
	env, order := envMap(c)
	if len(env) != len(order) {
		r.fail("container env lists a name twice")
	}
	checkEnvValues(c.Env, r)
	checkPortAndProbes(c, env, r)
	checkSecurity(w, c, r)
	checkResourcesAndShutdown(w, c, env, r)
	checkDirs(c, env, r)
	checkFiles(w, c, env, r)
	if replicated {
		checkReplicated(objs, w, env, order, r)
	} else {
		checkStandalone(objs, w, env, r)
	}
	svc := checkServices(objs, w, r)
	checkOptional(objs, w, svc, replicated, r)
	return order
}
