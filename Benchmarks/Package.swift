// swift-tools-version:6.2
// Benchmarks live in their own package so the main build and `make test` never compile them.
// Run with `make bench` (release build).

import PackageDescription

let package = Package(
    name: "peat-mesh-benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "peat-mesh", path: ".."),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.3.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0"),
    ],
    targets: [
        // Raw LMDB for the storage baseline (the main package's CLMDB is not a product).
        .systemLibrary(name: "BenchCLMDB", pkgConfig: "lmdb"),
        .executableTarget(
            name: "peat-bench",
            dependencies: [
                .product(name: "PeatIdentity", package: "peat-mesh"),
                .product(name: "PeatTransport", package: "peat-mesh"),
                .product(name: "PeatStorage", package: "peat-mesh"),
                .product(name: "PeatBroker", package: "peat-mesh"),
                .product(name: "PeatDiscovery", package: "peat-mesh"),
                .product(name: "PeatKubernetesDiscovery", package: "peat-mesh"),
                .product(name: "PeatCRDT", package: "peat-mesh"),
                .product(name: "Hummingbird", package: "hummingbird"),
                "BenchCLMDB",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
    ]
)
