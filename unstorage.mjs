import driver from './lib/unstorage.js'

export default driver
