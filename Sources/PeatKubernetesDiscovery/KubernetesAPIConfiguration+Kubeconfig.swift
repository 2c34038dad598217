import Foundation
public import PeatDiscovery
import Yams

extension KubernetesAPIConfiguration {
    /// The configuration of a kubeconfig file's context, for running outside a cluster.
    ///
    /// Supported: `server`, `certificate-authority(-data)`, `insecure-skip-tls-verify`, and users
    /// with `token`, `tokenFile`, or `client-certificate(-data)` + `client-key(-data)`. Exec and
    /// auth-provider plugins are not supported and are refused with a clear error.
    /// - Parameters:
    ///   - path: The kubeconfig file (usually `~/.kube/config`).
    ///   - context: The context to use; nil uses `current-context`.
    ///   - namespace: Overrides the context's namespace (default `default`).
    public static func kubeconfig(path: String, context: String? = nil, namespace: String? = nil) throws(DiscoveryError) -> KubernetesAPIConfiguration {
        let config: Kubeconfig
        do {
            guard let data = FileManager.default.contents(atPath: path) else {
                throw DiscoveryError(code: .invalidConfiguration, message: "cannot read kubeconfig \(path)")
            }
            config = try YAMLDecoder().decode(Kubeconfig.self, from: data)
        } catch let error as DiscoveryError {
            throw error
        } catch {
            throw DiscoveryError(code: .invalidConfiguration, message: "kubeconfig \(path) is not valid", cause: error)
        }
        let directory = (path as NSString).deletingLastPathComponent
        func resolve(_ file: String) -> String { file.hasPrefix("/") ? file : directory + "/" + file }
        /// Inline base64 `<what>-data` if present, else the file `<what>` (relative to the kubeconfig).
        func bytes(data: String?, file: String?, _ what: String) throws(DiscoveryError) -> [UInt8]? {
            if let data {
                guard let decoded = Data(base64Encoded: data.trimmingCharacters(in: .whitespacesAndNewlines)) else {
                    throw DiscoveryError(code: .invalidConfiguration, message: "the kubeconfig's \(what)-data is not base64")
                }
                return Array(decoded)
            }
            guard let file else { return nil }
            guard let contents = FileManager.default.contents(atPath: resolve(file)) else {
                throw DiscoveryError(code: .invalidConfiguration, message: "cannot read the kubeconfig's \(what) \(resolve(file))")
            }
            return Array(contents)
        }

        guard let contextName = context ?? config.currentContext,
            let entry = config.contexts?.first(where: { $0.name == contextName })?.context
        else {
            throw DiscoveryError(
                code: .invalidConfiguration, message: "kubeconfig \(path) has no context \(context ?? config.currentContext ?? "(current-context unset)")")
        }
        guard let cluster = config.clusters?.first(where: { $0.name == entry.cluster })?.cluster, let server = cluster.server else {
            throw DiscoveryError(code: .invalidConfiguration, message: "kubeconfig \(path) has no server for cluster \(entry.cluster ?? "?")")
        }
        let user = config.users?.first(where: { $0.name == entry.user })?.user
        if user?.exec != nil || user?.authProvider != nil {
            throw DiscoveryError(
                code: .invalidConfiguration,
                message:
                    "kubeconfig user \(entry.user ?? "?") uses an exec or auth-provider plugin, which is not supported; use a token, tokenFile or client certificate"
            )
        }
        let ca = try bytes(data: cluster.certificateAuthorityData, file: cluster.certificateAuthority, "certificate-authority")

        let token: Token
        if let value = user?.token {
            token = .fixed(value)
        } else if let file = user?.tokenFile {
            token = .file(path: resolve(file), refresh: .seconds(60))
        } else {
            token = .none
        }
        var configuration = KubernetesAPIConfiguration(
            server: server, namespace: namespace ?? entry.namespace ?? "default", token: token, certificateAuthorityPEM: ca)
        configuration.insecureSkipTLSVerify = cluster.insecureSkipTLSVerify ?? false
        configuration.clientCertificatePEM = try bytes(data: user?.clientCertificateData, file: user?.clientCertificate, "client-certificate")
        configuration.clientKeyPEM = try bytes(data: user?.clientKeyData, file: user?.clientKey, "client-key")
        return configuration
    }
}

/// The parts of a kubeconfig discovery reads.
struct Kubeconfig: Decodable {
    /// Any value at all: only whether the key is there matters.
    struct Present: Decodable {
        init(from decoder: any Decoder) throws {}
    }

    struct NamedContext: Decodable {
        struct Context: Decodable {
            let cluster: String?
            let user: String?
            let namespace: String?
        }
        let name: String
        let context: Context?
    }

    struct NamedCluster: Decodable {
        struct Cluster: Decodable {
            let server: String?
            let certificateAuthority: String?
            let certificateAuthorityData: String?
            let insecureSkipTLSVerify: Bool?

            enum CodingKeys: String, CodingKey {
                case server
                case certificateAuthority = "certificate-authority"
                case certificateAuthorityData = "certificate-authority-data"
                case insecureSkipTLSVerify = "insecure-skip-tls-verify"
            }
        }
        let name: String
        let cluster: Cluster?
    }

    struct NamedUser: Decodable {
        struct User: Decodable {
            let token: String?
            let tokenFile: String?
            let clientCertificate: String?
            let clientCertificateData: String?
            let clientKey: String?
            let clientKeyData: String?
            let exec: Present?
            let authProvider: Present?

            enum CodingKeys: String, CodingKey {
                case token, tokenFile, exec
                case clientCertificate = "client-certificate"
                case clientCertificateData = "client-certificate-data"
                case clientKey = "client-key"
                case clientKeyData = "client-key-data"
                case authProvider = "auth-provider"
            }
        }
        let name: String
        let user: User?
    }

    let currentContext: String?
    let contexts: [NamedContext]?
    let clusters: [NamedCluster]?
    let users: [NamedUser]?

    enum CodingKeys: String, CodingKey {
        case currentContext = "current-context"
        case contexts, clusters, users
    }
}
