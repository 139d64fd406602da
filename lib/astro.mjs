import cjs from './astro.js'

export const { redisDriver, entrypoint } = cjs
export default cjs.redisDriver
