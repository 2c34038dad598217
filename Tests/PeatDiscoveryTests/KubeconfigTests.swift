import Foundation
import PeatDiscovery
import PeatKubernetesDiscovery
import Testing

struct KubeconfigTests {
    static func write(_ text: String, files: [String: String] = [:]) throws -> String {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("kube-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        for (name, content) in files { try Data(content.utf8).write(to: URL(fileURLWithPath: directory + "/" + name)) }
        try Data(text.utf8).write(to: URL(fileURLWithPath: directory + "/config"))
        return directory + "/config"
    }

    static let caData = Data("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".utf8).base64EncodedString()

    @Test func readsTheCurrentContextWithTokenAndCAData() throws {
        let path = try Self.write(
            """
            apiVersion: v1
            kind: Config
            current-context: dev
            contexts:
            - name: dev
              context: {cluster: k3d-peat, user: admin, namespace: peat}
            - name: other
              context: {cluster: elsewhere, user: admin}
            clusters:
            - name: k3d-peat
              cluster:
                server: https://127.0.0.1:6443
                certificate-authority-data: \(Self.caData)
            - name: elsewhere
              cluster: {server: "https://10.0.0.1:6443", insecure-skip-tls-verify: true}
            users:
            - name: admin
              user: {token: secret-token}
            """)
        let configuration = try KubernetesAPIConfiguration.kubeconfig(path: path)
        #expect(configuration.server == "https://127.0.0.1:6443")
        #expect(configuration.namespace == "peat")
        #expect(configuration.certificateAuthorityPEM.map { String(decoding: $0, as: UTF8.self) }?.hasPrefix("-----BEGIN CERTIFICATE-----") == true)
        guard case .fixed(let token) = configuration.token else {
            Issue.record("expected the user's token")
            return
        }
        #expect(token == "secret-token")
        let other = try KubernetesAPIConfiguration.kubeconfig(path: path, context: "other")
        #expect(other.insecureSkipTLSVerify && other.namespace == "default")
    }

    @Test func readsRelativeFilesForCAAndTokenFile() throws {
        let path = try Self.write(
            """
            current-context: c
            contexts: [{name: c, context: {cluster: x, user: u}}]
            clusters: [{name: x, cluster: {server: "https://localhost:6443", certificate-authority: ca.crt}}]
            users: [{name: u, user: {tokenFile: token}}]
            """, files: ["ca.crt": "PEM-BYTES", "token": "t"])
        let configuration = try KubernetesAPIConfiguration.kubeconfig(path: path)
        #expect(configuration.certificateAuthorityPEM == Array("PEM-BYTES".utf8))
        guard case .file(let tokenPath, _) = configuration.token else {
            Issue.record("expected a token file")
            return
        }
        #expect(tokenPath.hasSuffix("/token"))
    }

    @Test(arguments: [
        "current-context: c\ncontexts: [{name: c, context: {cluster: x, user: u}}]\nclusters: [{name: x, cluster: {server: 'https://a'}}]\nusers: [{name: u, user: {exec: {command: aws}}}]",
        "current-context: c\ncontexts: [{name: c, context: {cluster: x, user: u}}]\nclusters: [{name: x, cluster: {server: 'https://a'}}]\nusers: [{name: u, user: {auth-provider: {name: gcp}}}]",
        "current-context: missing\ncontexts: []",
        "contexts: [{name: c, context: {cluster: nowhere}}]\ncurrent-context: c",
        "{ not: [valid yaml",
    ])
    func refusesWhatItCannotUse(_ text: String) throws {
        let path = try Self.write(text)
        #expect { try KubernetesAPIConfiguration.kubeconfig(path: path) } throws: { error in
            (error as? DiscoveryError)?.code == .invalidConfiguration
        }
    }

    @Test func execPluginErrorSaysItIsUnsupported() throws {
        let path = try Self.write(
            "current-context: c\ncontexts: [{name: c, context: {cluster: x, user: u}}]\nclusters: [{name: x, cluster: {server: 'https://a'}}]\nusers: [{name: u, user: {exec: {command: aws}}}]"
        )
        #expect { try KubernetesAPIConfiguration.kubeconfig(path: path) } throws: { error in
            (error as? DiscoveryError)?.message.contains("not supported") == true
        }
    }
}
