import Crypto
import Foundation
import NIOSSL
import PeatIdentity
import SwiftASN1
import X509

/// Self-signed X.509 certificates that carry a device's Ed25519 key, and the reverse: the device
/// key inside a peer's certificate.
///
/// No certificate authority is involved: the key in the certificate *is* the device identity, and
/// TLS 1.3's CertificateVerify proves the peer holds it. Validity dates are not what makes a peer
/// trusted (the formation proof is), so the certificate is valid from a day ago for ten years.
enum DeviceCertificate {
    /// A certificate and private key for `keypair`, in the forms NIOSSL needs.
    static func make(for keypair: DeviceKeypair) throws -> (certificate: NIOSSLCertificate, privateKey: NIOSSLPrivateKey) {
        do {
            var seed = keypair.rawRepresentation
            defer { seed.withUnsafeMutableBytes { _ = $0.initializeMemory(as: UInt8.self, repeating: 0) } }
            let signingKey = try Curve25519.Signing.PrivateKey(rawRepresentation: seed)
            let key = Certificate.PrivateKey(signingKey)
            let name = try DistinguishedName { CommonName("peat-device-\(keypair.deviceID.hex)") }
            let now = Date()
            let certificate = try Certificate(
                version: .v3,
                serialNumber: Certificate.SerialNumber(),
                publicKey: key.publicKey,
                notValidBefore: now.addingTimeInterval(-86_400),
                notValidAfter: now.addingTimeInterval(10 * 365 * 86_400),
                issuer: name,
                subject: name,
                signatureAlgorithm: .ed25519,
                extensions: try Certificate.Extensions {
                    Critical(BasicConstraints.notCertificateAuthority)
                    Critical(KeyUsage(digitalSignature: true))
                },
                issuerPrivateKey: key)
            var serializer = DER.Serializer()
            try serializer.serialize(certificate)
            let nioCertificate = try NIOSSLCertificate(bytes: serializer.serializedBytes, format: .der)
            let pem = try key.serializeAsPEM().pemString
            let nioKey = try NIOSSLPrivateKey(bytes: Array(pem.utf8), format: .pem)
            return (nioCertificate, nioKey)
        } catch {
            throw TransportError(code: .handshakeFailed, message: "cannot build this device's TLS certificate", cause: error)
        }
    }

    /// The Ed25519 device key in a certificate, or nil if it carries another kind of key.
    static func deviceKey(of certificate: NIOSSLCertificate) -> DevicePublicKey? {
        guard let der = try? certificate.toDERBytes(),
            let parsed = try? Certificate(derEncoded: der),
            let key = Curve25519.Signing.PublicKey(parsed.publicKey)
        else { return nil }
        return try? DevicePublicKey(rawRepresentation: key.rawRepresentation)
    }
}
