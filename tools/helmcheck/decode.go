// Strict decoding of rendered manifests into their Go API types.
//
// Each YAML document is converted to JSON with duplicate keys refused, then decoded with
// sigs.k8s.io/json's UnmarshalStrict, the decoder the API server itself uses for
// strict field validation: unknown fields, duplicate fields and wrong-case field names are
// errors. A kind the chart is not expected to render is an error too, so a new template
// cannot slip past the checks below without a type here.
package main

import (
	"fmt"

	cmv1 "github.com/cert-manager/cert-manager/pkg/apis/certmanager/v1"
	monv1 "github.com/prometheus-operator/prometheus-operator/pkg/apis/monitoring/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/validation"
	gwv1 "sigs.k8s.io/gateway-api/apis/v1"
	kjson "sigs.k8s.io/json"
	"sigs.k8s.io/yaml"
)

// object is any decoded API object.
type object interface {
	GetName() string
	GetNamespace() string
	GetLabels() map[string]string
}

// apiTypes maps "apiVersion/Kind" to a constructor of its Go type.
var apiTypes = map[string]func() object{
	"v1/Service":                                    func() object { return &corev1.Service{} },
	"v1/ServiceAccount":                             func() object { return &corev1.ServiceAccount{} },
	"v1/PersistentVolumeClaim":                      func() object { return &corev1.PersistentVolumeClaim{} },
	"apps/v1/Deployment":                            func() object { return &appsv1.Deployment{} },
	"apps/v1/StatefulSet":                           func() object { return &appsv1.StatefulSet{} },
	"policy/v1/PodDisruptionBudget":                 func() object { return &policyv1.PodDisruptionBudget{} },
	"networking.k8s.io/v1/Ingress":                  func() object { return &networkingv1.Ingress{} },
	"cert-manager.io/v1/Certificate":                func() object { return &cmv1.Certificate{} },
	"gateway.networking.k8s.io/v1/HTTPRoute":        func() object { return &gwv1.HTTPRoute{} },
	"gateway.networking.k8s.io/v1/BackendTLSPolicy": func() object { return &gwv1.BackendTLSPolicy{} },
	"monitoring.coreos.com/v1/ServiceMonitor":       func() object { return &monv1.ServiceMonitor{} },
}

// decoded is one rendered document and its typed form.
type decoded struct {
	gvk string // "apiVersion/Kind"
	obj object
}

func (d decoded) String() string { return d.gvk + " " + d.obj.GetName() }

func decodeStrict(doc string) (decoded, error) {
	js, err := yaml.YAMLToJSONStrict([]byte(doc))
	if err != nil {
		return decoded{}, fmt.Errorf("yaml: %w", err)
	}
	var tm metav1.TypeMeta
	if err := kjson.UnmarshalCaseSensitivePreserveInts(js, &tm); err != nil {
		return decoded{}, fmt.Errorf("type meta: %w", err)
	}
	gvk := tm.APIVersion + "/" + tm.Kind
	newObj, ok := apiTypes[gvk]
	if !ok {
		return decoded{}, fmt.Errorf("unexpected kind %s", gvk)
	}
	obj := newObj()
	strictErrs, err := kjson.UnmarshalStrict(js, obj)
	if err != nil {
		return decoded{}, fmt.Errorf("%s: %w", gvk, err)
	}
	if len(strictErrs) > 0 {
		return decoded{}, fmt.Errorf("%s %s: strict decoding: %v", gvk, obj.GetName(), strictErrs)
	}
	if err := checkMeta(obj); err != nil {
		return decoded{}, fmt.Errorf("%s: %w", gvk, err)
	}
	return decoded{gvk: gvk, obj: obj}, nil
}

// checkMeta applies the API server's rules for names and labels, which decoding alone
// does not check.
func checkMeta(obj object) error {
	if errs := validation.IsDNS1123Subdomain(obj.GetName()); len(errs) > 0 {
		return fmt.Errorf("name %q: %v", obj.GetName(), errs)
	}
	if obj.GetNamespace() != releaseNamespace {
		return fmt.Errorf("%s: namespace %q, want the release namespace %q", obj.GetName(), obj.GetNamespace(), releaseNamespace)
	}
	for k, v := range obj.GetLabels() {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return fmt.Errorf("%s: label key %q: %v", obj.GetName(), k, errs)
		}
		if errs := validation.IsValidLabelValue(v); len(errs) > 0 {
			return fmt.Errorf("%s: label %s=%q: %v", obj.GetName(), k, v, errs)
		}
	}
	return nil
}
