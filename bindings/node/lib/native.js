'use strict'

/** The compiled addon (built by `npm run build`), loaded for this platform. */
module.exports = require('../native.js')
