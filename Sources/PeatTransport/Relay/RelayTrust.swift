import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import X509

/// How a node trusts a relay's TLS certificate. A self-signed certificate (what a relay makes when
/// it has none configured) is accepted: the relay's access-key proof, bound to this certificate,
/// is what says it belongs to the formation. A certificate issued by someone else (a CA-signed one,
/// `PEAT_RELAY_TLS_CERT`) must also verify against the system's roots for the URL's host when this
/// node has roots (a slim image without a CA bundle relies on the proof alone).
final class RelayTrust: Sendable {
    let host: String
    private let leaf = NIOLockedValueBox<[UInt8]?>(nil)

    init(host: String) {
        self.host = host
    }

    /// SHA-256 of the verified leaf certificate's DER.
    var certificateHash: [UInt8]? { leaf.withLockedValue { $0 } }

    func verify(_ chain: [NIOSSLCertificate], promise: EventLoopPromise<NIOSSLVerificationResult>) {
        guard let first = chain.first, let der = try? first.toDERBytes(), let certificate = try? Certificate(derEncoded: der) else {
            promise.succeed(.failed)
            return
        }
        leaf.withLockedValue { $0 = Array(SHA256.hash(data: der)) }
        guard certificate.issuer != certificate.subject, let roots = Self.systemRoots else {
            promise.succeed(.certificateVerified)
            return
        }
        let intermediates = CertificateStore(chain.dropFirst().compactMap { try? Certificate(derEncoded: $0.toDERBytes()) })
        let host = host
        promise.completeWithTask {
            var verifier = Verifier(rootCertificates: roots) {
                RFC5280Policy()
                ServerIdentityPolicy(serverHostname: host.isIPAddress ? nil : host, serverIP: host.isIPAddress ? host : nil)
            }
            switch await verifier.validate(leaf: certificate, intermediates: intermediates) {
            case .validCertificate: return .certificateVerified
            case .couldNotValidate: return .failed
            }
        }
    }

    /// The system's CA bundle, or nil when this machine has none.
    static let systemRoots: CertificateStore? = {
        let paths = ["/etc/ssl/certs/ca-certificates.crt", "/etc/pki/tls/certs/ca-bundle.crt", "/etc/ssl/cert.pem"]
        guard paths.contains(where: { FileManager.default.isReadableFile(atPath: $0) }) else { return nil }
        return CertificateStore.systemTrustRoots
    }()
}

extension String {
    /// Whether this is an IPv4 or IPv6 literal (no name resolution).
    var isIPAddress: Bool {
        (try? SocketAddress(ipAddress: self, port: 0)) != nil
    }
}
