import createDriver from './astro-driver.js'

export default createDriver
