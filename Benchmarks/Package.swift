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
    ],
    targets: [
        .executableTarget(
            name: "peat-bench",
            dependencies: [
                .product(name: "PeatIdentity", package: "peat-mesh"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
    ]
)
