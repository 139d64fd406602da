import driver from './unstorage.js'

export default driver
