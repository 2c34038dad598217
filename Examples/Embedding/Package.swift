// swift-tools-version:6.2
// Embedding one module of peat-mesh at a time, as another Swift service would: each executable
// depends on one seam's product (and its conformance suite) and nothing else. `make test` builds
// and runs all three (`make examples`).
import PackageDescription

let package = Package(
    name: "peat-embedding-examples",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "peat-mesh", path: "../..")
    ],
    targets: [
        // A DocumentStore of its own, checked with the store conformance suite.
        .executableTarget(
            name: "StoreExample",
            dependencies: [
                .product(name: "PeatStorage", package: "peat-mesh"),
                .product(name: "PeatStorageTesting", package: "peat-mesh"),
            ]
        ),
        // A DiscoveryStrategy of its own (static and mDNS discovery need neither AsyncHTTPClient
        // nor Yams; only PeatKubernetesDiscovery does).
        .executableTarget(
            name: "DiscoveryExample",
            dependencies: [
                .product(name: "PeatDiscovery", package: "peat-mesh"),
                .product(name: "PeatDiscoveryTesting", package: "peat-mesh"),
            ]
        ),
        // Two services talking over the sync transport, and a transport checked with its suite.
        .executableTarget(
            name: "TransportExample",
            dependencies: [
                .product(name: "PeatIdentity", package: "peat-mesh"),
                .product(name: "PeatTransport", package: "peat-mesh"),
                .product(name: "PeatTransportTesting", package: "peat-mesh"),
            ]
        ),
    ]
)
