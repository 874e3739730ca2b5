//! Links the addon against the Node-API symbols of the node process that loads it.

fn main() {
    napi_build::setup();
}
