import NIOSSL

/// TLS 1.3-only contexts with mutual certificate authentication by Ed25519 device certificates.
enum TLSContextFactory {
    /// A context for either side. Both sides request the peer's certificate; the custom
    /// verification callback (not a CA) decides, accepting exactly one Ed25519 certificate.
    static func make(
        certificate: NIOSSLCertificate, privateKey: NIOSSLPrivateKey, server: Bool, versions: [SyncProtocolVersion] = SyncProtocolVersion.allCases
    ) throws -> NIOSSLContext {
        var configuration =
            server
            ? TLSConfiguration.makeServerConfiguration(certificateChain: [.certificate(certificate)], privateKey: .privateKey(privateKey))
            : TLSConfiguration.makeClientConfiguration()
        if !server {
            configuration.certificateChain = [.certificate(certificate)]
            configuration.privateKey = .privateKey(privateKey)
        }
        configuration.minimumTLSVersion = .tlsv13
        configuration.maximumTLSVersion = .tlsv13
        // Request (server) and check (both) the peer's certificate; NIOSSL requires a client
        // certificate once verification is on. The hostname is meaningless here: identity is the key.
        configuration.certificateVerification = .noHostnameVerification
        // No CA is ever consulted (the callback decides), so none is loaded: the default would read the
        // system bundle and fail where there is none (a slim container image has no /etc/ssl/certs).
        configuration.trustRoots = .certificates([])
        // Newest first: the server picks the first of its own list the client also offers.
        configuration.applicationProtocols = SyncProtocolVersion.alpns(versions)
        // Without Ed25519 here the handshake fails with "no common signature algorithms".
        configuration.verifySignatureAlgorithms = [.ed25519]
        configuration.signingSignatureAlgorithms = [.ed25519]
        do {
            return try NIOSSLContext(configuration: configuration)
        } catch {
            throw TransportError(code: .handshakeFailed, message: "cannot create the TLS context", cause: error)
        }
    }

    /// Accepts a chain of exactly one certificate that carries an Ed25519 key.
    static func verify(_ chain: [NIOSSLCertificate]) -> NIOSSLVerificationResult {
        guard chain.count == 1, let leaf = chain.first, DeviceCertificate.deviceKey(of: leaf) != nil else { return .failed }
        return .certificateVerified
    }
}
