//! Authentication and RBAC over HTTPS, driven by the real kubectl: a ServiceAccount's
//! token from `kubectl create token` (TokenRequest) lets through exactly what its
//! bindings grant, and the rest is refused with kube-apiserver's 403.

mod support;

const POLICY: &str = "apiVersion: v1
kind: ServiceAccount
metadata: {name: reader, namespace: team}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: configmaps, namespace: team}
rules:
- apiGroups: ['']
  resources: [configmaps]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: reader-configmaps, namespace: team}
subjects: [{kind: ServiceAccount, name: reader, namespace: team}]
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: configmaps}
";

#[tokio::test]
async fn a_service_account_token_gets_what_its_role_grants_and_no_more() {
    let Some(binary) = support::binary("FERROLB_KUBECTL", "kubectl", &["version", "--client"]) else {
        return;
    };
    let (server, dir, admin) = support::secure(binary).await;
    admin.ok(&["create", "namespace", "team"], None).await;
    admin.ok(&["apply", "-f", "-"], Some(POLICY)).await;
    admin
        .ok(
            &[
                "create",
                "configmap",
                "settings",
                "-n",
                "team",
                "--from-literal=a=b",
            ],
            None,
        )
        .await;
    let token = admin.ok(&["create", "token", "reader", "-n", "team"], None).await;
    let path = dir.path().join("reader");
    std::fs::write(&path, server.kubeconfig_for(&server.url(), token.trim())).unwrap();
    let reader = admin.with_kubeconfig(path);

    assert!(
        reader
            .ok(&["get", "configmaps", "-n", "team"], None)
            .await
            .contains("settings")
    );
    let (allowed, text) = reader.run(&["get", "configmaps", "-n", "default"], None).await;
    assert!(!allowed, "{text}");
    assert!(
        text.contains(
            "configmaps is forbidden: User \"system:serviceaccount:team:reader\" cannot list resource \"configmaps\" in API group \"\" in the namespace \"default\""
        ),
        "{text}"
    );
    let (allowed, text) = reader
        .run(&["delete", "configmap", "settings", "-n", "team"], None)
        .await;
    assert!(
        !allowed && text.contains("cannot delete resource \"configmaps\""),
        "{text}"
    );
    assert_eq!(server.shared.denials().len(), 2);

    // A token without a ServiceAccount, or no token at all, is 401.
    admin
        .ok(&["delete", "serviceaccount", "reader", "-n", "team"], None)
        .await;
    let (allowed, text) = reader.run(&["get", "configmaps", "-n", "team"], None).await;
    assert!(
        !allowed && text.contains("Unauthorized") || text.contains("provide credentials"),
        "{text}"
    );
}
