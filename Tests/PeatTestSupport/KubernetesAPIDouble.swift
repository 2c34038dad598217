import Crypto
import Foundation
public import Hummingbird
import HummingbirdTLS
public import NIOCore
import NIOSSL
import SwiftASN1
public import Synchronization
import X509

/// A Kubernetes API stand-in for discovery and node tests: HTTPS with its own CA, bearer tokens, list and
/// chunked watch of EndpointSlices with resource versions, bookmarks, 410s and injected failures.
public final class KubernetesAPIDouble: Sendable {
    public struct State {
        public var version = 1000
        public var slices: [String: String] = [:]  // name -> JSON object (without resourceVersion)
        public var watchers: [Int: AsyncStream<ByteBuffer>.Continuation] = [:]
        public var nextWatcher = 0
        public var token = "token-1"
        /// Status codes to answer the next requests with, in order (with an optional Retry-After).
        public var failures: [(Int, Int?)] = []
        public var lists = 0
        public var watches = 0
    }

    public let state = Mutex(State())
    public let certificatePEM: String
    private let serverConfiguration: TLSConfiguration

    public init() throws {
        let key = P256.Signing.PrivateKey()
        let certificateKey = Certificate.PrivateKey(key)
        let name = try DistinguishedName { CommonName("kubernetes-api-double") }
        let certificate = try Certificate(
            version: .v3, serialNumber: .init(), publicKey: certificateKey.publicKey,
            notValidBefore: Date().addingTimeInterval(-3600), notValidAfter: Date().addingTimeInterval(3600),
            issuer: name, subject: name, signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                SubjectAlternativeNames([.ipAddress(ASN1OctetString(contentBytes: [127, 0, 0, 1])), .dnsName("localhost")])
            },
            issuerPrivateKey: certificateKey)
        certificatePEM = try certificate.serializeAsPEM().pemString
        serverConfiguration = TLSConfiguration.makeServerConfiguration(
            certificateChain: [.certificate(try NIOSSLCertificate(bytes: Array(certificatePEM.utf8), format: .pem))],
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(try certificateKey.serializeAsPEM().pemString.utf8), format: .pem)))
    }

    // MARK: Driving the cluster

    /// An endpoint of a slice: a pod, its IP and its conditions.
    public struct Endpoint: Sendable {
        public var pod: String
        public var ip: String
        public var serving = true
        public var terminating = false

        public init(pod: String, ip: String, serving: Bool = true, terminating: Bool = false) {
            self.pod = pod
            self.ip = ip
            self.serving = serving
            self.terminating = terminating
        }
    }

    /// Creates or replaces a slice whose endpoints are `pods` (name, IP), all serving.
    public func setSlice(_ name: String, pods: [(String, String)]) {
        setSlice(name, endpoints: pods.map { Endpoint(pod: $0.0, ip: $0.1) })
    }

    /// Creates or replaces a slice with these endpoints.
    public func setSlice(_ name: String, endpoints: [Endpoint]) {
        let endpoints = endpoints.map { e in
            #"{"addresses":["\#(e.ip)"],"conditions":{"ready":\#(e.serving && !e.terminating),"serving":\#(e.serving),"terminating":\#(e.terminating)},"targetRef":{"kind":"Pod","name":"\#(e.pod)"}}"#
        }
        let object = #""addressType":"IPv4","endpoints":[\#(endpoints.joined(separator: ","))],"ports":[{"name":"sync","port":11204,"protocol":"TCP"}]"#
        let line: String = state.withLock { state in
            state.version += 1
            let type = state.slices[name] == nil ? "ADDED" : "MODIFIED"
            state.slices[name] = object
            return
                #"{"type":"\#(type)","object":{"kind":"EndpointSlice","metadata":{"name":"\#(name)","resourceVersion":"\#(state.version)","labels":{"app":"peat-mesh"}},\#(object)}}"#
        }
        broadcast(line)
    }

    /// Sends an in-stream 410 to every watch (as after etcd compaction).
    public func expireWatches() {
        broadcast(
            #"{"type":"ERROR","object":{"kind":"Status","apiVersion":"v1","status":"Failure","message":"too old resource version","reason":"Expired","code":410}}"#
        )
    }

    public func bookmark() {
        let version = state.withLock {
            $0.version += 1
            return $0.version
        }
        broadcast(#"{"type":"BOOKMARK","object":{"kind":"EndpointSlice","metadata":{"resourceVersion":"\#(version)"},"addressType":"","endpoints":null}}"#)
    }

    /// Ends every watch cleanly (as the server's timeout does).
    public func endWatches() {
        let watchers = state.withLock { state in
            defer { state.watchers = [:] }
            return Array(state.watchers.values)
        }
        for watcher in watchers { watcher.finish() }
    }

    private func broadcast(_ line: String) {
        let watchers = state.withLock { Array($0.watchers.values) }
        for watcher in watchers { watcher.yield(ByteBuffer(string: line + "\n")) }
    }

    // MARK: Serving

    public func application(onRunning: @escaping @Sendable (Int) async -> Void) -> some ApplicationProtocol {
        let router = Router()
        router.get("/apis/discovery.k8s.io/v1/namespaces/{namespace}/endpointslices") { request, _ -> Response in
            let token = self.state.withLock { $0.token }
            guard request.headers[.authorization] == "Bearer \(token)" else {
                return Self.status(401, "Unauthorized")
            }
            if let (code, retryAfter) = self.state.withLock({ state in state.failures.isEmpty ? nil : state.failures.removeFirst() }) {
                var response = Self.status(code, "injected failure")
                if let retryAfter { response.headers[.retryAfter] = String(retryAfter) }
                return response
            }
            guard request.uri.queryParameters.get("labelSelector") == "app=peat-mesh" else {
                return Self.status(400, "unexpected selector")
            }
            if request.uri.queryParameters.get("watch") == "1" {
                let (stream, continuation) = AsyncStream.makeStream(of: ByteBuffer.self)
                self.state.withLock { state in
                    state.watches += 1
                    state.watchers[state.nextWatcher] = continuation
                    state.nextWatcher += 1
                }
                return Response(status: .ok, headers: [.contentType: "application/json"], body: ResponseBody(asyncSequence: stream))
            }
            let body: String = self.state.withLock { state in
                state.lists += 1
                let items = state.slices.map { name, object in
                    #"{"metadata":{"name":"\#(name)","resourceVersion":"\#(state.version)"},\#(object)}"#
                }
                return
                    #"{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":"\#(state.version)"},"items":[\#(items.joined(separator: ","))]}"#
            }
            return Response(status: .ok, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
        }
        return Application(
            router: router,
            server: try! .tls(.http1(), tlsConfiguration: serverConfiguration),
            configuration: .init(address: .hostname("127.0.0.1", port: 0)),
            onServerRunning: { channel in await onRunning(channel.localAddress?.port ?? 0) })
    }

    public static func status(_ code: Int, _ message: String) -> Response {
        let body = #"{"kind":"Status","apiVersion":"v1","status":"Failure","message":"\#(message)","code":\#(code)}"#
        return Response(status: .init(code: code), headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(string: body)))
    }

    /// A kubeconfig for a client of this double listening on `port` (namespace `peat`).
    public func kubeconfig(port: Int) -> String {
        let ca = Data(certificatePEM.utf8).base64EncodedString()
        let token = state.withLock { $0.token }
        return """
            apiVersion: v1
            kind: Config
            current-context: double
            contexts:
            - name: double
              context: {cluster: double, user: test, namespace: peat}
            clusters:
            - name: double
              cluster:
                server: https://127.0.0.1:\(port)
                certificate-authority-data: \(ca)
            users:
            - name: test
              user: {token: \(token)}
            """
    }
}
