#include "workspaces/kube/kube_client.h"

// The ResourceType accessors of kube_client.h: function-local statics (thread-safe on first use).
namespace tessera::workspaces::kube {

const ResourceType& WorkspaceType() {
  static const ResourceType t{"workspaces.tessera.dev", "v1alpha1", "Workspace", "workspaces",
                              true};
  return t;
}

const ResourceType& WorkspaceTemplateType() {
  static const ResourceType t{"workspaces.tessera.dev", "v1alpha1", "WorkspaceTemplate",
                              "workspacetemplates", true};
  return t;
}

const ResourceType& StatefulSetType() {
  static const ResourceType t{"apps", "v1", "StatefulSet", "statefulsets", true};
  return t;
}

const ResourceType& ServiceType() {
  static const ResourceType t{"", "v1", "Service", "services", true};
  return t;
}

const ResourceType& PersistentVolumeClaimType() {
  static const ResourceType t{"", "v1", "PersistentVolumeClaim", "persistentvolumeclaims", true};
  return t;
}

const ResourceType& PodType() {
  static const ResourceType t{"", "v1", "Pod", "pods", true};
  return t;
}

const ResourceType& EventType() {
  static const ResourceType t{"", "v1", "Event", "events", true};
  return t;
}

const ResourceType& LeaseType() {
  static const ResourceType t{"coordination.k8s.io", "v1", "Lease", "leases", true};
  return t;
}

const ResourceType& VirtualServiceType() {
  static const ResourceType t{"networking.istio.io", "v1beta1", "VirtualService", "virtualservices",
                              true};
  return t;
}

const ResourceType& AuthorizationPolicyType() {
  static const ResourceType t{"security.istio.io", "v1beta1", "AuthorizationPolicy",
                              "authorizationpolicies", true};
  return t;
}

const ResourceType& RayClusterType() {
  static const ResourceType t{"ray.io", "v1", "RayCluster", "rayclusters", true};
  return t;
}

}  // namespace tessera::workspaces::kube
