import AsyncHTTPClient
import Foundation
import NIOCore
import NIOSSL
public import PeatDiscovery
import Synchronization

/// Where and how to reach the Kubernetes API.
public struct KubernetesAPIConfiguration: Sendable {
    /// How the bearer token is obtained.
    public enum Token: Sendable {
        /// A token file, re-read at most every `refresh` and after a 401 (tokens are rotated).
        case file(path: String, refresh: Duration)
        case fixed(String)
        /// No bearer token (a client certificate authenticates, or the API is open).
        case none
    }

    /// `https://host:port` of the API server.
    public var server: String
    /// The namespace to watch.
    public var namespace: String
    public var token: Token
    /// The CA that signs the API server's certificate (PEM); nil uses the system's trust roots.
    public var certificateAuthorityPEM: [UInt8]?
    /// Skip verifying the server's certificate (kubeconfig `insecure-skip-tls-verify`; development only).
    public var insecureSkipTLSVerify = false
    /// A client certificate and key (PEM) that authenticate this client instead of a token.
    public var clientCertificatePEM: [UInt8]?
    public var clientKeyPEM: [UInt8]?

    public init(server: String, namespace: String, token: Token, certificateAuthorityPEM: [UInt8]?) {
        self.server = server
        self.namespace = namespace
        self.token = token
        self.certificateAuthorityPEM = certificateAuthorityPEM
    }

    /// The configuration of a pod: `KUBERNETES_SERVICE_HOST`/`_PORT` and the service-account folder
    /// (`token`, `ca.crt`, `namespace`).
    /// - Throws: `DiscoveryError(.invalidConfiguration)` outside a cluster.
    public static func inCluster(
        environment: [String: String],
        serviceAccountDirectory: String = "/var/run/secrets/kubernetes.io/serviceaccount"
    ) throws(DiscoveryError) -> KubernetesAPIConfiguration {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty,
            let port = environment["KUBERNETES_SERVICE_PORT"], Int(port) != nil
        else {
            throw DiscoveryError(
                code: .invalidConfiguration,
                message: "not running in a Kubernetes pod: KUBERNETES_SERVICE_HOST/KUBERNETES_SERVICE_PORT are not set")
        }
        let namespaceFile = serviceAccountDirectory + "/namespace"
        guard let namespaceData = FileManager.default.contents(atPath: namespaceFile),
            let namespace = String(data: namespaceData, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines),
            !namespace.isEmpty
        else {
            throw DiscoveryError(code: .invalidConfiguration, message: "cannot read the pod's namespace from \(namespaceFile)")
        }
        let ca = FileManager.default.contents(atPath: serviceAccountDirectory + "/ca.crt").map { Array($0) }
        let hostPart = host.contains(":") ? "[\(host)]" : host
        return KubernetesAPIConfiguration(
            server: "https://\(hostPart):\(port)", namespace: namespace,
            token: .file(path: serviceAccountDirectory + "/token", refresh: .seconds(60)), certificateAuthorityPEM: ca)
    }
}

/// The two EndpointSlice calls discovery makes, behind a protocol so tests can inject a client.
public protocol KubernetesAPIClient: Sendable {
    /// Lists the slices matching `labelSelector`; returns them with the list's resource version.
    func listEndpointSlices(labelSelector: String) async throws -> (slices: [EndpointSlice], resourceVersion: String?)

    /// Watches from `resourceVersion` (with bookmarks), calling `onEvent` for each event until the
    /// server ends the watch or `onEvent` returns false.
    func watchEndpointSlices(
        labelSelector: String, resourceVersion: String?, timeoutSeconds: Int,
        onEvent: @Sendable (WatchEvent) async -> Bool
    ) async throws

    /// Closes the client's connections; called once discovery has stopped using it.
    func shutdown() async
}

extension KubernetesAPIClient {
    /// Nothing to close (test doubles).
    public func shutdown() async {}
}

/// An HTTP status the API answered with (the cause of a `DiscoveryError(.apiFailure)`).
public struct KubernetesAPIStatus: Error, Sendable, Equatable {
    public let code: Int
    /// `Retry-After`, when the server sent one (429/503).
    public let retryAfter: Duration?
}

/// `KubernetesAPIClient` over AsyncHTTPClient: bearer token (re-read from its file periodically
/// and after a 401), the cluster CA, chunked watch bodies decoded as they arrive, and an idle
/// deadline on the watch (AsyncHTTPClient's timeout covers only the response head).
public final class HTTPKubernetesAPIClient: KubernetesAPIClient {
    private let configuration: KubernetesAPIConfiguration
    private let client: HTTPClient
    private let cachedToken = Mutex<(token: String, read: ContinuousClock.Instant)?>(nil)

    public init(configuration: KubernetesAPIConfiguration) throws(DiscoveryError) {
        self.configuration = configuration
        var tls = TLSConfiguration.makeClientConfiguration()
        if let pem = configuration.certificateAuthorityPEM {
            do {
                tls.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(pem))
            } catch {
                throw DiscoveryError(code: .invalidConfiguration, message: "the Kubernetes CA certificate is not valid PEM", cause: error)
            }
        }
        if configuration.insecureSkipTLSVerify { tls.certificateVerification = .none }
        if let certificate = configuration.clientCertificatePEM, let key = configuration.clientKeyPEM {
            do {
                tls.certificateChain = try NIOSSLCertificate.fromPEMBytes(certificate).map { .certificate($0) }
                tls.privateKey = .privateKey(try NIOSSLPrivateKey(bytes: key, format: .pem))
            } catch {
                throw DiscoveryError(code: .invalidConfiguration, message: "the kubeconfig client certificate or key is not valid PEM", cause: error)
            }
        }
        var clientConfiguration = HTTPClient.Configuration(tlsConfiguration: tls)
        clientConfiguration.timeout = .init(connect: .seconds(5), read: .seconds(30))
        client = HTTPClient(eventLoopGroupProvider: .singleton, configuration: clientConfiguration)
    }

    public func shutdown() async {
        try? await client.shutdown()
    }

    deinit {
        // A client discovery never ran (or never stopped) still releases its connections; after
        // `shutdown()` this returns at once.
        try? client.syncShutdown()
    }

    private func token(forceRefresh: Bool) throws(DiscoveryError) -> String? {
        switch configuration.token {
        case .none:
            return nil
        case .fixed(let token):
            return token
        case .file(let path, let refresh):
            if !forceRefresh, let cached = cachedToken.withLock({ $0 }), cached.read.duration(to: .now) < refresh {
                return cached.token
            }
            guard let data = FileManager.default.contents(atPath: path),
                let token = String(data: data, encoding: .utf8)?.trimmingCharacters(in: .whitespacesAndNewlines)
            else {
                throw DiscoveryError(code: .apiFailure, message: "cannot read the service-account token file \(path)")
            }
            cachedToken.withLock { $0 = (token, .now) }
            return token
        }
    }

    private func url(_ labelSelector: String, query: [(String, String)]) -> String {
        var components = URLComponents()
        components.queryItems = [URLQueryItem(name: "labelSelector", value: labelSelector)] + query.map { URLQueryItem(name: $0.0, value: $0.1) }
        let encodedQuery = components.percentEncodedQuery ?? ""
        return "\(configuration.server)/apis/discovery.k8s.io/v1/namespaces/\(configuration.namespace)/endpointslices?\(encodedQuery)"
    }

    /// Sends a request, re-reading the token once after a 401.
    private func execute(_ url: String, timeout: TimeAmount) async throws -> HTTPClientResponse {
        for attempt in 0..<2 {
            var request = HTTPClientRequest(url: url)
            if let token = try token(forceRefresh: attempt > 0) {
                request.headers.add(name: "Authorization", value: "Bearer \(token)")
            }
            request.headers.add(name: "Accept", value: "application/json")
            let response = try await client.execute(request, timeout: timeout)
            if response.status.code == 401, attempt == 0 { continue }
            guard response.status.code == 200 else {
                let retryAfter = response.headers.first(name: "Retry-After").flatMap(Int.init).map { Duration.seconds($0) }
                throw DiscoveryError(
                    code: .apiFailure, message: "the Kubernetes API answered \(response.status.code) for EndpointSlices",
                    cause: KubernetesAPIStatus(code: Int(response.status.code), retryAfter: retryAfter))
            }
            return response
        }
        throw DiscoveryError(code: .apiFailure, message: "unreachable")
    }

    public func listEndpointSlices(labelSelector: String) async throws -> (slices: [EndpointSlice], resourceVersion: String?) {
        let response = try await execute(url(labelSelector, query: []), timeout: .seconds(30))
        let body = try await response.body.collect(upTo: 64 * 1024 * 1024)
        struct List: Decodable {
            struct Metadata: Decodable { let resourceVersion: String? }
            let metadata: Metadata?
            let items: [EndpointSlice]?
        }
        do {
            let list = try JSONDecoder().decode(List.self, from: Data(body.readableBytesView))
            return (list.items ?? [], list.metadata?.resourceVersion)
        } catch {
            throw DiscoveryError(code: .malformedResponse, message: "the EndpointSlice list is not valid", cause: error)
        }
    }

    public func watchEndpointSlices(
        labelSelector: String, resourceVersion: String?, timeoutSeconds: Int,
        onEvent: @Sendable (WatchEvent) async -> Bool
    ) async throws {
        var query = [("watch", "1"), ("allowWatchBookmarks", "true"), ("timeoutSeconds", String(timeoutSeconds))]
        if let resourceVersion { query.append(("resourceVersion", resourceVersion)) }
        let response = try await execute(url(labelSelector, query: query), timeout: .seconds(Int64(timeoutSeconds) + 30))
        var decoder = WatchEventDecoder()
        var chunks = response.body.makeAsyncIterator()
        let idleLimit = Duration.seconds(timeoutSeconds + 30)
        while let chunk = try await Self.next(&chunks, within: idleLimit) {
            for event in try decoder.feed(chunk.readableBytesView) {
                guard await onEvent(event) else { return }
            }
        }
    }

    /// The next body chunk, or an error when none arrives within `limit` (a silent, dead watch).
    private static func next(_ iterator: inout HTTPClientResponse.Body.AsyncIterator, within limit: Duration) async throws -> ByteBuffer? {
        let box = IteratorBox(iterator)
        defer { iterator = box.iterator }
        return try await withThrowingTaskGroup(of: ByteBuffer?.self) { group in
            group.addTask { try await box.next() }
            group.addTask {
                try await Task.sleep(for: limit)
                throw DiscoveryError(code: .apiFailure, message: "the watch was silent for \(limit); reconnecting")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    private final class IteratorBox: @unchecked Sendable {
        // @unchecked Sendable: used by one child task at a time, handed back when it finishes.
        var iterator: HTTPClientResponse.Body.AsyncIterator
        init(_ iterator: HTTPClientResponse.Body.AsyncIterator) { self.iterator = iterator }
        func next() async throws -> ByteBuffer? { try await iterator.next() }
    }
}
